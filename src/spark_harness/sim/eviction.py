"""Eviction orders for the KV tiers: LRU, LFU and FIFO over the *evictable* entries.

A tier keeps only unpinned entries here (a G1 block in use by a running sequence, or a
G2/G3 block being copied, is not evictable) and asks for a victim when it needs room:

- ``lru``: least recently used first (use = hit, or release by its last user);
- ``lfu``: fewest hits first, ties broken by least recent use;
- ``fifo``: first stored first, whatever happened since (pinning keeps the place).

Keys are block hashes. Hit counts belong to the caller (they survive pinning), so
``add`` and ``touch`` take the current count. ``discard`` pins (the key keeps its
history); ``remove`` forgets a key that left the tier.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from collections.abc import Hashable
from typing import Protocol


class EvictionPolicy(Protocol):
    def add(self, key: Hashable, hits: int) -> None:
        """Make ``key`` evictable (it was stored, released or unpinned)."""

    def touch(self, key: Hashable, hits: int) -> None:
        """``key`` was hit while evictable; ``hits`` is its new count."""

    def discard(self, key: Hashable) -> None:
        """``key`` is pinned: not evictable until added again. Absent keys are ignored."""

    def remove(self, key: Hashable) -> None:
        """``key`` left the tier: forget it entirely."""

    def pop_victim(self) -> Hashable | None:
        """Remove and return the next key to evict, or None if nothing is evictable."""

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool: ...


class LRU:
    """Recency order: ``add`` and ``touch`` make a key the most recent."""

    def __init__(self) -> None:
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable, hits: int) -> None:
        self._order[key] = None
        self._order.move_to_end(key)

    def touch(self, key: Hashable, hits: int) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def discard(self, key: Hashable) -> None:
        self._order.pop(key, None)

    remove = discard

    def pop_victim(self) -> Hashable | None:
        if not self._order:
            return None
        return self._order.popitem(last=False)[0]

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order


class _LazyHeap:
    """A min-heap of (priority, key) with lazy deletion: the base of LFU and FIFO."""

    def __init__(self) -> None:
        self._heap: list[tuple[tuple[int, int], Hashable]] = []
        self._live: dict[Hashable, tuple[int, int]] = {}

    def _push(self, key: Hashable, priority: tuple[int, int]) -> None:
        self._live[key] = priority
        heapq.heappush(self._heap, (priority, key))
        if len(self._heap) > 2 * len(self._live) + 64:  # drop stale entries
            self._heap = [(p, k) for k, p in self._live.items()]
            heapq.heapify(self._heap)

    def discard(self, key: Hashable) -> None:
        self._live.pop(key, None)

    def _pop(self) -> Hashable | None:
        while self._heap:
            priority, key = heapq.heappop(self._heap)
            if self._live.get(key) == priority:
                del self._live[key]
                return key
        return None

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: object) -> bool:
        return key in self._live


class LFU(_LazyHeap):
    """Fewest hits first; among equals, least recently added or touched."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = itertools.count()

    def add(self, key: Hashable, hits: int) -> None:
        self._push(key, (hits, next(self._clock)))

    def touch(self, key: Hashable, hits: int) -> None:
        if key in self._live:
            self.add(key, hits)

    remove = _LazyHeap.discard

    def pop_victim(self) -> Hashable | None:
        return self._pop()


class FIFO(_LazyHeap):
    """Arrival order: a key keeps the place it got when first stored in the tier."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = itertools.count()
        self._born: dict[Hashable, int] = {}

    def add(self, key: Hashable, hits: int) -> None:
        born = self._born.setdefault(key, next(self._clock))
        self._push(key, (born, 0))

    def touch(self, key: Hashable, hits: int) -> None:
        return None

    def remove(self, key: Hashable) -> None:
        self.discard(key)
        self._born.pop(key, None)

    def pop_victim(self) -> Hashable | None:
        key = self._pop()
        if key is not None:
            del self._born[key]
        return key


def make_policy(name: str) -> EvictionPolicy:
    """The policy called ``name`` (lru, lfu, fifo)."""
    policies: dict[str, type[EvictionPolicy]] = {"lru": LRU, "lfu": LFU, "fifo": FIFO}
    if name not in policies:
        raise ValueError(f"unknown eviction policy {name!r}")
    return policies[name]()
