"""KV mechanisms through the real HTTP API: prefix reuse, eviction order, offload and
onboard across tiers with real G3 files, and the disk offload filter."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from spark_harness import tokens
from spark_harness.sim.blockhash import block_hashes

from .simclient import device_backed, proc_read_bytes, run, running_sim, words

BT = 16


def hashes_of(prompt: str, salt: str = "sim") -> list[bytes]:
    return block_hashes(tokens.text_tokens(prompt), BT, salt)


def test_identical_prompts_hit_the_prefix_cache(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim(
            {"mode": "tiered", "g1_blocks": 64, "block_tokens": BT}, tmp_path
        ) as sim:
            first = await sim.generate(words(50), max_tokens=2)
            m0 = await sim.metrics()
            second = await sim.generate(words(50), max_tokens=2)
            m1 = await sim.metrics()
            assert first.cached_tokens == 0
            assert second.cached_tokens == 48  # three full blocks of 16
            assert (
                m1["vllm:prefix_cache_queries_total"] - m0["vllm:prefix_cache_queries_total"] == 50
            )
            assert m1["vllm:prefix_cache_hits_total"] - m0["vllm:prefix_cache_hits_total"] == 48
            other = await sim.generate("nonce " + words(49), max_tokens=2)
            assert other.cached_tokens == 0  # a tag at the start defeats reuse

    run(scenario())


def test_prompt_of_whole_blocks_recomputes_its_last_block(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim(
            {"mode": "tiered", "g1_blocks": 64, "block_tokens": BT}, tmp_path
        ) as sim:
            await sim.generate(words(48), max_tokens=1)
            again = await sim.generate(words(48), max_tokens=1)
            assert again.cached_tokens == 32  # at least one token is always computed

    run(scenario())


def test_stack_a_does_not_reuse_by_default(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim(
            {"mode": "uma", "g1_blocks": 64, "block_tokens": BT}, tmp_path
        ) as sim:
            await sim.generate(words(50), max_tokens=2)
            again = await sim.generate(words(50), max_tokens=2)
            assert again.cached_tokens == 0
            assert (await sim.metrics())["vllm:prefix_cache_hits_total"] == 0

    run(scenario())


@pytest.mark.parametrize(("policy", "evicted"), [("lru", "A"), ("lfu", "C"), ("fifo", "B")])
def test_each_eviction_policy_evicts_in_its_order(
    tmp_path: Path, policy: str, evicted: str
) -> None:
    # Prompts of 33 tokens: two full (cacheable) blocks each, plus a partial one.
    # Seven G1 blocks hold three prompts' cached pairs and one free block.
    prompts = {name: words(33, tag=name) for name in "ABCD"}
    # B is stored first, A is hit twice, C is stored last and never hit, B is hit once:
    # least recently used = A, fewest hits = C, first stored = B.
    order = ["B", "A", "A", "A", "C", "B"]

    async def scenario() -> None:
        cfg = {
            "mode": "uma",
            "prefix_reuse": True,
            "g1_blocks": 7,
            "block_tokens": BT,
            "eviction": policy,
        }
        async with running_sim(cfg, tmp_path) as sim:
            for name in order:
                await sim.generate(prompts[name], max_tokens=1)
            await sim.generate(prompts["D"], max_tokens=1)  # needs room for one prompt
            pool = sim.engine.kv.pool
            present = {n for n in "ABC" if len(pool.match(hashes_of(prompts[n]))) == 2}
            gone = {n for n in "ABC" if not pool.match(hashes_of(prompts[n]))}
            assert gone == {evicted} and present == set("ABC") - {evicted}

    run(scenario())


#: A tiered world small enough that a handful of 65-token prompts reach G3.
SMALL_TIERS = {
    "mode": "tiered",
    "g1_blocks": 8,
    "g2_blocks": 4,
    "g3_blocks": 64,
    "block_tokens": BT,
    "max_num_seqs": 1,
    "byte_scale": 0.25,
}


def test_offload_and_onboard_counters_equal_the_blocks_that_moved(tmp_path: Path) -> None:
    # 65-token prompts: four full blocks each (all reusable) plus one partial block.
    n = 6
    prompts = [words(65, tag=f"p{i}-") for i in range(n)]
    cfg = dict(SMALL_TIERS)

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path) as sim:
            for p in prompts:
                await sim.generate(p, max_tokens=1)
            kv = sim.engine.kv
            assert kv._writer is not None
            kv._writer.submit(lambda: None).result()  # writes issued so far are done
            m = await sim.metrics()
            in_g1 = len(kv.pool._cached)
            d2h = m["kvbm_offload_blocks_d2h_total"]
            h2d = m["kvbm_offload_blocks_h2d_total"]
            assert d2h == 4 * n - in_g1  # every computed block that left G1, once
            assert h2d == d2h - len(kv.g2)  # everything that left G2 went to disk
            assert m["kvbm_offload_blocks_d2d_total"] == 0
            block = kv.cfg.block_bytes
            assert m["sim_kv_g3_write_bytes_total"] == h2d * block
            # the G3 tier is a real file whose slots hold the blocks written
            files = list((tmp_path / "g3").iterdir())
            assert len(files) == 1 and files[0].stat().st_size == 64 * block
            data = files[0].read_bytes()
            tags = {data[s * block : s * block + 16] for s in range(64)}
            assert hashes_of(prompts[0])[0] in tags

            # the oldest prompt is now on disk only: onboard it from G3
            before = proc_read_bytes()
            again = await sim.generate(prompts[0], max_tokens=1)
            read = proc_read_bytes() - before
            m2 = await sim.metrics()
            assert again.cached_tokens == 64
            assert again.sim["g3_onboard_blocks"] == 4 and again.sim["g2_onboard_blocks"] == 0
            assert again.sim["g3_fetch_ms"] > 0
            assert m2["kvbm_onboard_blocks_d2d_total"] == 4
            assert m2["kvbm_matched_tokens_total"] == 64
            assert m2["sim_kv_g3_read_bytes_total"] == 4 * block
            assert m2["sim_kv_g3_fetch_seconds_count"] == 1
            # hit rates over the blocks looked up beyond G1: 6 x 4 misses, then 4 in G3
            assert m2["kvbm_disk_cache_hit_rate"] == pytest.approx(4 / 28)
            assert m2["kvbm_host_cache_hit_rate"] == 0
            if device_backed(tmp_path):
                assert read >= 4 * block  # the reads reached the device

            # the prompt evicted last sits in G2: onboard it from host memory
            g2_prompt = next(
                p
                for p in reversed(prompts[1:])
                if all(h in kv.g2 for h in hashes_of(p)[len(kv.pool.match(hashes_of(p))) :])
            )
            from_g2 = await sim.generate(g2_prompt, max_tokens=1)
            m3 = await sim.metrics()
            assert from_g2.sim["g2_onboard_blocks"] > 0 and from_g2.sim["g3_onboard_blocks"] == 0
            assert m3["kvbm_onboard_blocks_h2d_total"] == from_g2.sim["g2_onboard_blocks"]
            assert from_g2.sim["g2_fetch_ms"] > 0

    run(scenario())


def test_a_block_still_being_written_onboards_from_its_host_buffer(tmp_path: Path) -> None:
    """A G3 block whose write has not completed is copied from host memory at once: the
    request neither waits for the writer (here held up on purpose) nor reads the disk."""
    prompts = [words(65, tag=f"w{i}-") for i in range(6)]
    cfg = dict(SMALL_TIERS)

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path) as sim:
            kv = sim.engine.kv
            assert kv._writer is not None and kv.g3 is not None
            hold = threading.Event()
            kv._writer.submit(hold.wait, 30.0)  # every later write queues behind this
            try:
                for p in prompts:
                    await sim.generate(p, max_tokens=1)
                first = hashes_of(prompts[0])[:4]
                assert all(h in kv.g3 for h in first)  # offloaded to G3 ...
                assert not any(kv.g3.get(h).written.done() for h in first)  # ... not written
                m = await sim.metrics()
                again = await asyncio.wait_for(sim.generate(prompts[0], max_tokens=1), 10.0)
                m2 = await sim.metrics()
                assert again.cached_tokens == 64
                assert again.sim["g2_onboard_blocks"] == 4 and again.sim["g3_onboard_blocks"] == 0
                assert m2["kvbm_onboard_blocks_h2d_total"] - m["kvbm_onboard_blocks_h2d_total"] == 4
                assert m2["kvbm_onboard_blocks_d2d_total"] == m["kvbm_onboard_blocks_d2d_total"]
                assert m2["sim_kv_g3_read_bytes_total"] == 0  # nothing read back
                assert not hold.is_set()  # served while the writer was still held
            finally:
                hold.set()

    run(scenario())


def test_disk_offload_filter_keeps_never_reused_blocks_off_disk(tmp_path: Path) -> None:
    cfg = {**SMALL_TIERS, "disk_offload_filter": True}

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path) as sim:
            reused = words(65, tag="reused-")
            await sim.generate(reused, max_tokens=1)
            await sim.generate(reused, max_tokens=1)  # its blocks now have a hit
            for i in range(5):
                await sim.generate(words(65, tag=f"once{i}-"), max_tokens=1)
            m = await sim.metrics()
            assert m["sim_kv_filtered_blocks_total"] > 0
            kv = sim.engine.kv
            assert kv.g3 is not None
            on_disk = [h for h in hashes_of(reused) if h in kv.g3]
            assert on_disk  # the reused prompt reached G3 ...
            assert m["kvbm_offload_blocks_h2d_total"] == len(kv.g3)  # ... and nothing else

    run(scenario())
