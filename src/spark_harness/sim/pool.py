"""G1: the paged KV cache in GPU memory (unified memory on a DGX Spark).

Blocks are either *free* (no content), *in use* (referenced by running sequences) or
*cached* (registered under a block hash with no user, kept for prefix reuse until the
eviction policy picks them). A cached block is found again by its hash; a block in use
can be shared by several sequences (reference counts). Evicted hashes are returned to
the caller, which offloads them to lower tiers (``kvcache``).
"""

from __future__ import annotations

from dataclasses import dataclass

from spark_harness.sim.eviction import EvictionPolicy
from spark_harness.sim.resident import ResidentMemory


@dataclass(eq=False, slots=True)
class Block:
    """One G1 block. ``pending`` is the onboard filling it, until its data has arrived."""

    index: int
    hash: bytes | None = None
    refs: int = 0
    hits: int = 0
    pending: object | None = None


class BlockPool:
    """Fixed number of G1 blocks with prefix lookup, reference counts and eviction."""

    def __init__(
        self,
        capacity: int,
        policy: EvictionPolicy,
        reuse: bool,
        memory: ResidentMemory | None = None,
    ) -> None:
        self.capacity = capacity
        self.reuse = reuse
        self.memory = memory  # real pages behind blocks with content (``resident_kv``)
        self._policy = policy
        self._free = [Block(i) for i in range(capacity - 1, -1, -1)]
        self._cached: dict[bytes, Block] = {}
        self.reserved = 0  # blocks promised to admitted sequences (reserve allocation)

    # ------------------------------------------------------------ lookups
    def match(self, hashes: list[bytes]) -> list[Block]:
        """The longest prefix of ``hashes`` present in G1 (not pinned by this call)."""
        out: list[Block] = []
        for h in hashes:
            block = self._cached.get(h)
            if block is None:
                break
            out.append(block)
        return out

    def evictable_count(self, blocks: list[Block]) -> int:
        """How many of ``blocks`` are cached without users (pinning them costs capacity)."""
        return sum(1 for b in blocks if b.refs == 0)

    def available(self) -> int:
        """Blocks an allocation may take now: free plus evictable, less reservations."""
        return len(self._free) + len(self._policy) - self.reserved

    def used(self) -> int:
        """Blocks referenced by sequences (vLLM's KV usage numerator)."""
        return self.capacity - len(self._free) - len(self._policy)

    # ------------------------------------------------------------ changes
    def pin(self, blocks: list[Block], hit: bool) -> None:
        """Take a reference on each block (a hit counts towards LFU)."""
        for b in blocks:
            if b.refs == 0 and b.hash is not None:
                self._policy.discard(b.hash)
            b.refs += 1
            if hit:
                b.hits += 1

    def allocate(self, n: int) -> tuple[list[Block], list[Block]]:
        """``n`` blocks with one reference each, and the cached blocks evicted for them.

        The evicted blocks are returned as snapshots (hash and hits) for offloading; the
        caller must have checked :meth:`available`.
        """
        out: list[Block] = []
        evicted: list[Block] = []
        while len(out) < n:
            if self._free:
                block = self._free.pop()
                if self.memory is not None:
                    self.memory.occupy(block.index)
            else:
                victim = self._policy.pop_victim()
                if victim is None:
                    raise RuntimeError("G1 allocation beyond its capacity (caller bug)")
                assert isinstance(victim, bytes)
                block = self._cached.pop(victim)
                evicted.append(Block(block.index, block.hash, 0, block.hits))
                block.hash = None
                block.hits = 0
            block.refs = 1
            out.append(block)
        return out, evicted

    def register(self, block: Block, block_hash: bytes, hits: int = 0) -> bool:
        """Publish a computed (or arriving) block under its hash; False if already there."""
        if not self.reuse or block_hash in self._cached:
            return False
        block.hash = block_hash
        block.hits = hits
        self._cached[block_hash] = block
        return True

    def release(self, blocks: list[Block]) -> None:
        """Drop one reference from each block, tail first.

        Releasing the tail first makes it older in LRU/FIFO order, so a sequence's
        prefix outlives its suffix, as in vLLM.
        """
        for b in reversed(blocks):
            b.refs -= 1
            if b.refs > 0:
                continue
            if b.hash is not None:
                self._policy.add(b.hash, b.hits)
            else:
                self._free.append(b)
                if self.memory is not None:
                    self.memory.vacate(b.index)
