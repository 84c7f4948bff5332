"""The shipped stacks under the plan's workloads: Stack A never reads KV from the
device; Stack B does once the context sweep overflows G1, with a TTFT knee; B2
re-hydrates from disk faster than B0 recomputes, and B1 never touches the disk."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path
from typing import Any

import pytest

from spark_harness.plan import resolve_stack

from .simclient import Result, SimClient, device_backed, proc_read_bytes, run, running_sim, words

ROOT = Path(__file__).resolve().parents[2]
U_WORK = 8  # H0's knee on these stacks (config/config.yaml sweep)
OUTPUT_TOKENS = 16


def shipped(variant: str | None = None, uma: bool = False) -> dict[str, Any]:
    file = "config/stacks/sim-uma.yaml" if uma else "config/stacks/sim-tiered.yaml"
    sim = resolve_stack(ROOT / file, variant)["sim"]
    sim.pop("lora_adapters", None)  # H1's adapters are not needed here
    return sim


def median_ttft(results: list[Result]) -> float:
    # not a tail quantile: one stall of a loaded test machine delays all 8 users at once
    return statistics.median(r.ttft_s for r in results)


async def fixed_context(sim: SimClient, context: int, seconds: float) -> list[Result]:
    # each user re-sends its own prompt, unique from its first token (nonce on)
    prompts = [words(context, tag=f"user{u}-") for u in range(U_WORK)]
    await sim.closed_loop(prompts, 0.3, OUTPUT_TOKENS)  # warm-up
    return await sim.closed_loop(prompts, seconds, OUTPUT_TOKENS)


@pytest.mark.slow
def test_h2a_stack_a_reads_no_kv_from_the_device(tmp_path: Path) -> None:
    async def scenario() -> None:
        for context in (256, 2048):
            async with running_sim(shipped(uma=True), tmp_path / str(context)) as sim:
                before = proc_read_bytes()
                results = await fixed_context(sim, context, 1.5)
                read = proc_read_bytes() - before
                assert results and all(r.status == 200 for r in results)
                assert read < 2**20  # nothing but noise
                assert not [k for k in await sim.metrics() if k.startswith("kvbm_")]

    run(scenario())


@pytest.mark.slow
def test_h2b_stack_b_fetches_from_g3_past_a_knee(tmp_path: Path) -> None:
    async def scenario() -> dict[int, tuple[list[Result], int, dict]]:
        out = {}
        for context in (512, 1024):
            async with running_sim(shipped(), tmp_path / str(context)) as sim:
                before = proc_read_bytes()
                results = await fixed_context(sim, context, 2.0)
                out[context] = (results, proc_read_bytes() - before, await sim.metrics())
        return out

    points = run(scenario())
    small, _, m_small = points[512]
    big, read, m_big = points[1024]
    assert sum(r.sim["g3_onboard_blocks"] for r in small) == 0  # G1 holds 8 users at 512
    assert m_small["kvbm_onboard_blocks_d2d_total"] == 0
    g3 = sum(r.sim["g3_onboard_blocks"] for r in big)
    assert g3 > 0 and m_big["kvbm_onboard_blocks_d2d_total"] >= g3
    assert m_big["sim_kv_g3_read_bytes_total"] > 0
    if device_backed(tmp_path):  # the G3 reads reached the device
        assert read >= 0.9 * m_big["sim_kv_g3_read_bytes_total"]
    assert median_ttft(big) > 3 * median_ttft(small)  # the TTFT knee (~5x here)


@pytest.mark.slow
def test_h9_b2_rehydrates_faster_than_b0_recomputes(tmp_path: Path) -> None:
    context, sessions, thrash = 1024, 4, 16

    async def replay(variant: str) -> list[Result]:
        async with running_sim(shipped(variant), tmp_path / variant) as sim:
            first = [words(context, tag=f"s{i}-") for i in range(sessions)]
            for batch in (first, [words(context, tag=f"t{i}-") for i in range(thrash)]):
                for i in range(0, len(batch), 4):
                    await asyncio.gather(*(sim.generate(p, max_tokens=8) for p in batch[i : i + 4]))
            return [
                await sim.generate(p + " " + words(16, tag="next"), max_tokens=8) for p in first
            ]

    async def scenario() -> dict[str, list[Result]]:
        return {v: await replay(v) for v in ("B0", "B1", "B2")}

    runs = run(scenario())
    g3 = {v: sum(r.sim["g3_onboard_blocks"] for r in rs) for v, rs in runs.items()}
    assert g3["B0"] == 0 and g3["B1"] == 0 and g3["B2"] == sessions * context // 16
    mean = {v: statistics.mean(r.ttft_s for r in rs) for v, rs in runs.items()}
    fetch = statistics.mean(r.sim["g3_fetch_ms"] for r in runs["B2"]) / 1e3
    # B2 pays its reads from the real device (50-71 ms here and in CI, with the
    # device's mood) and almost nothing else; B0 pays ~100 ms of recompute
    assert mean["B2"] - fetch < 0.25 * mean["B0"]
    # whether re-hydrating wins is the device's answer, not the simulator's (H9's
    # question): in one CI run its reads took 66-90 ms and B2 came in at 0.92 of B0
    if fetch < 0.6 * mean["B0"]:
        assert mean["B2"] < 0.9 * mean["B0"]
    assert all(r.cached_tokens == 0 for r in runs["B0"])
