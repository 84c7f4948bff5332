"""Scheduling: batching, queueing, preemption by recompute, admission control."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import pytest

from spark_harness.sim.profiles import hardware_profile, model_profile
from spark_harness.sim.timing import TimingModel

from .simclient import run, running_sim, words

TINY = TimingModel.of(model_profile("tiny"), hardware_profile("tiny-box"))


def test_concurrent_sequences_share_steps(tmp_path: Path) -> None:
    cfg = {"mode": "uma", "g1_blocks": 256, "max_num_seqs": 8}

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path) as sim:
            results = await asyncio.gather(
                *(sim.generate(words(32, tag=f"u{i}"), max_tokens=40) for i in range(4))
            )
            for res in results:
                gaps = [
                    b - a
                    for a, b in zip(res.event_offsets_s, res.event_offsets_s[1:], strict=False)
                ]
                tpot = statistics.median(gaps)
                # one step for four decoding sequences, not four steps
                assert tpot < 2 * TINY.step_s(4, 0.0, 4 * 60)

    run(scenario())


def test_max_num_seqs_queues_the_rest(tmp_path: Path) -> None:
    cfg = {"mode": "uma", "g1_blocks": 256, "max_num_seqs": 2}

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path) as sim:
            results = await asyncio.gather(
                *(sim.generate(words(32, tag=f"u{i}"), max_tokens=20) for i in range(4))
            )
            queued = sorted(r.sim["queue_ms"] for r in results)
            # the other two wait for a whole request (20 steps) to finish; the first two
            # wait at most for a step in progress when they arrive
            assert queued[2] > 15 * TINY.fixed_s * 1e3
            assert queued[1] < queued[2] / 4
            ttfts = sorted(r.ttft_s for r in results)
            assert ttfts[2] > 3 * ttfts[0]

    run(scenario())


def burst_steps(cfg: dict, tmp_path: Path, stagger_s: float = 0.0005) -> int:
    """Steps an idle engine takes for four one-token requests arriving ``stagger_s`` apart
    (a closed loop's users coming back after one step answered them all)."""

    async def scenario() -> int:
        async with running_sim(cfg, tmp_path) as sim:
            await sim.generate(words(8, tag="warm"), max_tokens=1)
            before = sim.engine.stats.steps

            async def user(i: int) -> None:
                await asyncio.sleep(i * stagger_s)
                assert (await sim.generate(words(32, tag=f"u{i}"), max_tokens=1)).status == 200

            await asyncio.gather(*(user(i) for i in range(4)))
            return sim.engine.stats.steps - before

    return run(scenario())


def test_idle_batch_wait_starts_a_burst_as_one_batch(tmp_path: Path) -> None:
    base = {"mode": "uma", "g1_blocks": 256, "max_num_seqs": 8}
    # without the wait the first arrival starts a step alone and the others take the next
    assert burst_steps(base, tmp_path / "off") >= 2
    assert burst_steps({**base, "idle_batch_wait_ms": 20}, tmp_path / "on") == 1


def test_idle_batch_wait_delays_only_an_idle_engine(tmp_path: Path) -> None:
    cfg = {"mode": "uma", "g1_blocks": 256, "max_num_seqs": 8, "idle_batch_wait_ms": 60}

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path) as sim:
            first = await sim.generate(words(32, tag="alone"), max_tokens=1)
            # from idle: the wait, then one prefill step (on the timeline: no more)
            assert 0.060 <= first.ttft_s < 0.060 + TINY.step_s(1, TINY.prefill_s(32, 0), 0) + 0.05
            long = asyncio.create_task(sim.generate(words(32, tag="long"), max_tokens=200))
            await asyncio.sleep(0.2)  # the long one decodes: the engine is busy
            joined = await sim.generate(words(32, tag="joins"), max_tokens=1)
            assert joined.ttft_s < 0.060  # it joins the next step without waiting
            assert (await long).status == 200

    run(scenario())


def overload(cfg: dict, tmp_path: Path) -> tuple[list, dict]:
    async def scenario() -> tuple[list, dict]:
        async with running_sim(cfg, tmp_path) as sim:
            results = await asyncio.gather(
                *(sim.generate(words(33, tag=f"u{i}"), max_tokens=60) for i in range(4))
            )
            return results, await sim.metrics()

    return run(scenario())


def test_overload_causes_preemption_by_recompute(tmp_path: Path) -> None:
    # four sequences grow to 93 tokens = 6 blocks each: 24 blocks, G1 holds 20
    cfg = {
        "mode": "tiered",
        "g1_blocks": 20,
        "max_num_seqs": 8,
        "block_tokens": 16,
        "kv_allocation": "on_demand",
    }
    results, metrics = overload(cfg, tmp_path)
    assert metrics["vllm:num_preemptions_total"] > 0
    assert sum(r.sim["preemptions"] for r in results) == metrics["vllm:num_preemptions_total"]
    for r in results:
        assert r.status == 200 and len(r.texts) == 60 and r.finish_reason == "length"
    alone, _ = overload({**cfg, "g1_blocks": 64}, tmp_path)
    assert [r.text for r in results] == [r.text for r in alone]  # recompute loses nothing


def test_reserve_allocation_queues_instead_of_preempting(tmp_path: Path) -> None:
    cfg = {"mode": "uma", "g1_blocks": 20, "max_num_seqs": 8, "block_tokens": 16}
    results, metrics = overload(cfg, tmp_path)
    assert metrics["vllm:num_preemptions_total"] == 0
    assert all(len(r.texts) == 60 for r in results)
    # 6 blocks reserved per request: three fit at once, the fourth waits
    assert sum(1 for r in results if r.sim["queue_ms"] > 50) == 1


def test_admission_reject_answers_503_instead_of_running_out_of_memory(tmp_path: Path) -> None:
    cfg = {"mode": "uma", "g1_blocks": 10, "block_tokens": 16, "admission": "reject"}

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path) as sim:
            results = await asyncio.gather(
                *(sim.generate(words(60, tag=f"u{i}"), max_tokens=30) for i in range(2))
            )
            statuses = sorted(r.status for r in results)
            assert statuses == [200, 503]
            rejected = next(r for r in results if r.status == 503)
            assert rejected.error is not None and rejected.error["code"] == "kv_cache_full"
            assert (await sim.metrics())["sim_requests_rejected_total"] == 1
            later = await sim.generate(words(60, tag="later"), max_tokens=30)
            assert later.status == 200

    run(scenario())


def test_a_request_larger_than_g1_is_refused_up_front(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim(
            {"mode": "tiered", "g1_blocks": 4, "block_tokens": 16}, tmp_path
        ) as sim:
            res = await sim.generate(words(70), max_tokens=1)
            assert res.status == 400 and "KV blocks" in res.error["message"]

    run(scenario())


@pytest.mark.parametrize("mode", ["uma", "tiered"])
def test_chunked_prefill_splits_long_prompts_over_steps(tmp_path: Path, mode: str) -> None:
    cfg = {"mode": mode, "g1_blocks": 256, "max_num_batched_tokens": 256}

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path) as sim:
            before = sim.engine.stats.steps
            res = await sim.generate(words(1000), max_tokens=1)
            assert res.status == 200
            assert sim.engine.stats.steps - before == 4  # 1000 tokens / 256 per step

    run(scenario())
