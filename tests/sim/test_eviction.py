"""Each eviction policy evicts in its own order."""

from __future__ import annotations

import pytest

from spark_harness.sim.eviction import FIFO, LFU, LRU, make_policy


def drain(policy) -> list:
    out = []
    while (key := policy.pop_victim()) is not None:
        out.append(key)
    return out


def test_lru_evicts_least_recently_used_first() -> None:
    p = LRU()
    for k in "abcd":
        p.add(k, 0)
    p.touch("a", 1)  # a becomes the most recent
    p.discard("b")  # pinned: not evictable
    p.add("b", 0)  # released again: now the most recent
    assert drain(p) == ["c", "d", "a", "b"]


def test_lfu_evicts_fewest_hits_first_then_least_recent() -> None:
    p = LFU()
    p.add("a", 3)
    p.add("b", 1)
    p.add("c", 1)
    p.add("d", 0)
    p.touch("b", 2)  # b now has 2 hits
    assert drain(p) == ["d", "c", "b", "a"]


def test_fifo_keeps_arrival_order_whatever_happens() -> None:
    p = FIFO()
    for k in "abcd":
        p.add(k, 0)
    p.touch("a", 5)
    p.discard("a")  # pinned and released: keeps its first place
    p.add("a", 5)
    assert drain(p) == ["a", "b", "c", "d"]
    p.add("a", 0)  # evicted, then stored again: a new arrival
    p.add("e", 0)
    p.remove("a")
    p.add("a", 0)
    assert drain(p) == ["e", "a"]


@pytest.mark.parametrize("name", ["lru", "lfu", "fifo"])
def test_policies_ignore_pinned_and_removed_keys(name: str) -> None:
    p = make_policy(name)
    for k in range(5):
        p.add(k, k)
    p.discard(1)
    p.remove(3)
    assert len(p) == 3 and 1 not in p and 3 not in p
    assert sorted(drain(p)) == [0, 2, 4]
    assert p.pop_victim() is None


def test_lfu_heap_stays_bounded_under_many_touches() -> None:
    p = LFU()
    p.add("a", 0)
    p.add("b", 0)
    for i in range(10_000):
        p.touch("a", i + 1)
    assert len(p._heap) < 200
    assert drain(p) == ["b", "a"]


def test_unknown_policy_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown eviction policy"):
        make_policy("random")
