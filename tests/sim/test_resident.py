"""resident_kv: G1 blocks with content are real memory, as on a unified-memory machine."""

from __future__ import annotations

import psutil

from spark_harness.sim.eviction import make_policy
from spark_harness.sim.pool import BlockPool
from spark_harness.sim.resident import ResidentMemory

MIB = 2**20


def rss() -> int:
    return psutil.Process().memory_info().rss


def test_occupied_blocks_are_resident_and_vacated_ones_are_returned() -> None:
    mem = ResidentMemory(capacity=64, block_bytes=MIB)
    before = rss()
    for i in range(48):
        mem.occupy(i)
    grown = rss() - before
    assert 44 * MIB < grown < 56 * MIB  # 48 MiB of touched pages, give or take the allocator
    for i in range(48):
        mem.vacate(i)
    assert rss() - before < 4 * MIB
    assert mem.resident == 0
    mem.close()


def test_the_pool_backs_exactly_its_blocks_with_content() -> None:
    mem = ResidentMemory(capacity=32, block_bytes=4096)
    pool = BlockPool(32, make_policy("lru"), reuse=False, memory=mem)
    a, _ = pool.allocate(10)
    b, _ = pool.allocate(5)
    assert mem.resident == pool.used() == 15
    pool.release(a)
    assert mem.resident == pool.used() == 5
    pool.release(b)
    assert mem.resident == 0


def test_cached_blocks_stay_resident_until_they_return_to_the_free_list() -> None:
    mem = ResidentMemory(capacity=8, block_bytes=4096)
    pool = BlockPool(8, make_policy("lru"), reuse=True, memory=mem)
    blocks, _ = pool.allocate(3)
    for i, blk in enumerate(blocks):
        pool.register(blk, bytes([i]))
    pool.release(blocks)  # cached for reuse: the KV is still in memory
    assert mem.resident == 3 and pool.used() == 0
    _, evicted = pool.allocate(8)  # 5 free ones are backed now, 3 reused in place
    assert len(evicted) == 3 and mem.resident == 8
