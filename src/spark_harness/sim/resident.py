"""G1 blocks as real memory: on a unified-memory machine the KV cache is the host's RAM.

On a DGX Spark, Stack A's KV cache lives in the same LPDDR5x the operating system
counts, so the OS memory counters (``MemAvailable``) move with KV use; that is why they
can explain A's latency (H3). The simulator's KV is otherwise bookkeeping only. With
``resident_kv`` the pool backs every block that holds content with real anonymous
memory: a page is written when the block leaves the free list and handed back to the
kernel (``MADV_DONTNEED``) when it returns, so ``MemAvailable`` falls and rises with
G1 occupancy, as on the real machine.
"""

from __future__ import annotations

import mmap

PAGE = mmap.PAGESIZE


class ResidentMemory:
    """``capacity`` blocks of ``block_bytes`` of anonymous memory, touched on demand."""

    def __init__(self, capacity: int, block_bytes: int) -> None:
        self.block_bytes = -(-block_bytes // PAGE) * PAGE  # whole pages per block
        self._map = mmap.mmap(-1, max(1, capacity) * self.block_bytes)
        self._view = memoryview(self._map)
        self.resident = 0  # blocks backed by memory now

    def occupy(self, index: int) -> None:
        """Back block ``index`` with memory: one write per page makes each page resident."""
        start = index * self.block_bytes
        self._view[start : start + self.block_bytes : PAGE] = b"\x01" * (self.block_bytes // PAGE)
        self.resident += 1

    def vacate(self, index: int) -> None:
        """Return block ``index``'s pages to the kernel (they read as zeros afterwards)."""
        self._map.madvise(mmap.MADV_DONTNEED, index * self.block_bytes, self.block_bytes)
        self.resident -= 1

    def close(self) -> None:
        self._view.release()
        self._map.close()
