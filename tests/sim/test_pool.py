"""G1 block pool: prefix match, reference counts, eviction returns what it displaced."""

from __future__ import annotations

import pytest

from spark_harness.sim.eviction import make_policy
from spark_harness.sim.pool import BlockPool


def hashes(n: int, tag: str = "h") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(n)]


def test_registered_blocks_match_as_a_prefix_and_survive_release() -> None:
    pool = BlockPool(8, make_policy("lru"), reuse=True)
    hs = hashes(3)
    blocks, evicted = pool.allocate(3)
    assert evicted == []
    for b, h in zip(blocks, hs, strict=True):
        assert pool.register(b, h)
    assert pool.used() == 3
    pool.release(blocks)
    assert pool.used() == 0 and pool.available() == 8
    assert pool.match([*hs, b"other"]) == blocks
    assert pool.match([b"other", *hs]) == []


def test_no_reuse_means_no_registration() -> None:
    pool = BlockPool(4, make_policy("lru"), reuse=False)
    blocks, _ = pool.allocate(2)
    assert not pool.register(blocks[0], b"x")
    pool.release(blocks)
    assert pool.match([b"x"]) == []


def test_shared_blocks_are_freed_by_their_last_user() -> None:
    pool = BlockPool(4, make_policy("lru"), reuse=True)
    blocks, _ = pool.allocate(2)
    for b, h in zip(blocks, hashes(2), strict=True):
        pool.register(b, h)
    pool.pin(blocks, hit=True)  # a second sequence shares them
    assert [b.refs for b in blocks] == [2, 2] and [b.hits for b in blocks] == [1, 1]
    pool.release(blocks)
    assert pool.used() == 2
    pool.release(blocks)
    assert pool.used() == 0


def test_eviction_takes_the_tail_of_a_released_sequence_first() -> None:
    pool = BlockPool(4, make_policy("lru"), reuse=True)
    blocks, _ = pool.allocate(4)
    for b, h in zip(blocks, hashes(4), strict=True):
        pool.register(b, h)
    pool.release(blocks)
    _, evicted = pool.allocate(2)
    # released tail first, so the tail is the oldest: h3 then h2 go, the prefix stays
    assert [e.hash for e in evicted] == [b"h3", b"h2"]
    assert pool.match(hashes(4)) == blocks[:2]


def test_evictable_count_and_reservations_limit_what_is_available() -> None:
    pool = BlockPool(4, make_policy("lru"), reuse=True)
    blocks, _ = pool.allocate(2)
    for b, h in zip(blocks, hashes(2), strict=True):
        pool.register(b, h)
    pool.release(blocks)
    assert pool.evictable_count(blocks) == 2
    pool.reserved = 1
    assert pool.available() == 3


def test_allocating_beyond_capacity_is_a_bug() -> None:
    pool = BlockPool(2, make_policy("lru"), reuse=True)
    pool.allocate(2)
    with pytest.raises(RuntimeError):
        pool.allocate(1)
