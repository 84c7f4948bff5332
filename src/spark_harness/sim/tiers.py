"""G2 (host memory) and G3 (disk) as indexes: which block hashes a tier holds.

A tier has a capacity in blocks and an eviction policy over its unpinned entries; an
entry being copied out (onboard) is pinned so it cannot be evicted mid-copy. G3 entries
also own a slot of the G3 file and the future of the write that fills it. The copies
themselves are done by ``kvcache`` (G2: modeled link; G3: real file I/O).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from spark_harness.sim.eviction import make_policy


@dataclass(eq=False, slots=True)
class Entry:
    hits: int
    pins: int = 0
    slot: int = -1
    written: Future[Any] | None = None  # the write job filling the slot


class Tier:
    """A capacity-bounded set of block hashes with an eviction order."""

    def __init__(self, name: str, capacity: int, policy: str) -> None:
        self.name = name
        self.capacity = capacity
        self._policy = make_policy(policy)
        self._entries: dict[bytes, Entry] = {}

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, block_hash: bytes) -> Entry:
        return self._entries[block_hash]

    def usage(self) -> float:
        return len(self._entries) / self.capacity if self.capacity else 0.0

    def hit(self, block_hash: bytes) -> Entry:
        """Count a hit (for LFU, and recency for LRU)."""
        entry = self._entries[block_hash]
        entry.hits += 1
        if entry.pins == 0:
            self._policy.touch(block_hash, entry.hits)
        return entry

    def refresh(self, block_hash: bytes) -> None:
        """The block was just in use above this tier: recency only, not a hit."""
        entry = self._entries[block_hash]
        if entry.pins == 0:
            self._policy.touch(block_hash, entry.hits)

    def pin(self, block_hash: bytes) -> None:
        entry = self._entries[block_hash]
        entry.pins += 1
        if entry.pins == 1:
            self._policy.discard(block_hash)

    def unpin(self, block_hash: bytes) -> None:
        entry = self._entries[block_hash]
        entry.pins -= 1
        if entry.pins == 0:
            self._policy.add(block_hash, entry.hits)

    def insert(
        self, block_hash: bytes, hits: int
    ) -> tuple[Entry | None, list[tuple[bytes, Entry]]]:
        """Store a new hash, evicting as needed: (the entry or None if full of pinned
        entries, the evicted (hash, entry) pairs)."""
        assert block_hash not in self._entries
        evicted: list[tuple[bytes, Entry]] = []
        while len(self._entries) >= self.capacity:
            victim = self._policy.pop_victim()
            if victim is None:
                return None, evicted
            assert isinstance(victim, bytes)
            evicted.append((victim, self._entries.pop(victim)))
        entry = Entry(hits=hits)
        self._entries[block_hash] = entry
        self._policy.add(block_hash, hits)
        return entry, evicted

    def remove(self, block_hash: bytes) -> Entry:
        """Take an entry out (its copy failed); it must not be pinned."""
        entry = self._entries.pop(block_hash)
        self._policy.remove(block_hash)
        return entry


class DiskTier(Tier):
    """G3: every entry owns one slot of the G3 file."""

    def __init__(self, capacity: int, policy: str) -> None:
        super().__init__("g3", capacity, policy)
        self._free_slots = list(range(capacity - 1, -1, -1))

    def insert(
        self, block_hash: bytes, hits: int
    ) -> tuple[Entry | None, list[tuple[bytes, Entry]]]:
        entry, evicted = super().insert(block_hash, hits)
        self._free_slots.extend(e.slot for _, e in evicted)
        if entry is not None:
            entry.slot = self._free_slots.pop()
        return entry, evicted

    def remove(self, block_hash: bytes) -> Entry:
        entry = super().remove(block_hash)
        self._free_slots.append(entry.slot)
        return entry
