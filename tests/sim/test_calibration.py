"""Calibration end to end: llama-3.1-8b on dgx-spark against docs/REFERENCE.md's figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from .simclient import run, running_sim, words

PUBLISHED_PREFILL_TOK_S = 10_257  # ISL/OSL 2048/128, TensorRT-LLM, NVFP4
PUBLISHED_DECODE_TOK_S = 38.65


def test_llama_8b_ttft_and_decode_rate_within_10_percent(tmp_path: Path) -> None:
    cfg = {
        "model_profile": "llama-3.1-8b",
        "hardware_profile": "dgx-spark",
        "mode": "uma",
        "block_tokens": 32,
        "max_num_batched_tokens": 8192,
    }

    async def scenario() -> tuple:
        async with running_sim(cfg, tmp_path) as sim:
            res = await sim.generate(words(2048), max_tokens=128)
            return res, await sim.metrics()

    res, metrics = run(scenario())
    assert res.status == 200 and len(res.texts) == 128
    published_ttft_s = 2048 / PUBLISHED_PREFILL_TOK_S
    assert res.ttft_s == pytest.approx(published_ttft_s, rel=0.10)
    decode_tok_s = 127 / (res.e2e_s - res.ttft_s)
    assert decode_tok_s == pytest.approx(PUBLISHED_DECODE_TOK_S, rel=0.10)
    # the engine kept to its modeled timeline
    ratio = (
        metrics["sim_engine_step_actual_seconds_total"]
        / metrics["sim_engine_step_modeled_seconds_total"]
    )
    assert ratio == pytest.approx(1.0, abs=0.05)
