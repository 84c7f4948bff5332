"""UMA paging (``mode: paging``, the v2.5 plan's H2/H4): KV beyond unified memory pages to a file.

On a unified-memory machine an engine that allocates more KV than physical memory does
not fail: the OS pages the overflow to swap on NVMe, and every step that touches a
paged-out block waits for it to come back. This module models that with real storage:
G1 is the engine's *logical* KV capacity (``g1_blocks``); only ``resident_blocks`` of it
fit in memory. Each engine step touches the blocks of every sequence in its batch
(attention reads the whole context); a touched block that is not resident is paged in,
and to make room the least recently touched resident block is paged out. Page-in and
page-out are page-granular (4 KiB ``pread``/``pwrite`` each, ``O_DIRECT`` where the
filesystem allows, as the kernel's swap does), on one preallocated swap file, so the
paging knee shows in the device's read counters and in the step time, hence in p99.

A block never written out has no content on disk: its first touch is a zero-fill (no
read), as for anonymous memory; a freed block is forgotten (never written out).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import mmap
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spark_harness.sim.config import IO_ALIGN
from spark_harness.sim.diskio import create_preallocated

#: The kernel's page size on every machine the harness targets (x86-64, aarch64 4K).
PAGE_BYTES = IO_ALIGN


class SwapFile:
    """A preallocated file of ``pages`` pages, read and written one page at a time."""

    def __init__(self, path: Path, pages: int) -> None:
        self.path = path
        self._fd, self.direct = create_preallocated(path, pages * PAGE_BYTES, "swap")
        self._buf = mmap.mmap(-1, PAGE_BYTES)  # page-aligned, as O_DIRECT needs

    def write_page(self, page: int) -> None:
        offset = page * PAGE_BYTES
        self._buf[:8] = page.to_bytes(8, "little")
        if os.pwritev(self._fd, [self._buf], offset) != PAGE_BYTES:
            raise OSError(errno.EIO, f"short write to swap page {page}")
        if not self.direct:
            os.fdatasync(self._fd)
            os.posix_fadvise(self._fd, offset, PAGE_BYTES, os.POSIX_FADV_DONTNEED)

    def read_page(self, page: int) -> None:
        """Read one page back and check it is the page written there (not a hole)."""
        offset = page * PAGE_BYTES
        if os.preadv(self._fd, [self._buf], offset) != PAGE_BYTES:
            raise OSError(errno.EIO, f"short read from swap page {page}")
        if not self.direct:
            os.posix_fadvise(self._fd, offset, PAGE_BYTES, os.POSIX_FADV_DONTNEED)
        if self._buf[:8] != page.to_bytes(8, "little"):
            raise OSError(errno.EIO, f"swap page {page} does not hold what was written")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass
class PagingStats:
    """Cumulative counters (exported as ``sim_paging_*``)."""

    faults: int = 0  # blocks paged in (major faults, one per block)
    pages_in: int = 0
    pages_out: int = 0
    fault_seconds: float = 0.0  # wall time engine steps waited for paging I/O


@dataclass(frozen=True)
class Plan:
    """The I/O one step needs: blocks to write out, then blocks to read in."""

    out: list[int]
    into: list[int]


class Pager:
    """Residency of G1 blocks in a memory budget of ``resident_blocks``, LRU replacement."""

    def __init__(self, path: Path, blocks: int, resident_blocks: int, block_bytes: int) -> None:
        if resident_blocks < 1:
            raise ValueError("resident_blocks must be >= 1")
        self.resident_blocks = resident_blocks
        self.pages_per_block = max(1, block_bytes // PAGE_BYTES)
        self.file = SwapFile(path, blocks * self.pages_per_block)
        self.stats = PagingStats()
        self._resident: OrderedDict[int, None] = OrderedDict()  # LRU first
        self._on_disk: set[int] = set()  # blocks whose content lives in the swap file

    @property
    def resident(self) -> int:
        return len(self._resident)

    @property
    def swapped(self) -> int:
        return sum(1 for b in self._on_disk if b not in self._resident)

    def plan(self, blocks: Iterable[int]) -> Plan:
        """Make ``blocks`` resident (bookkeeping only); return the I/O that takes."""
        wanted = list(dict.fromkeys(blocks))
        keep = set(wanted)
        out: list[int] = []
        into: list[int] = []
        for b in wanted:
            if b in self._resident:
                self._resident.move_to_end(b)
                continue
            if len(self._resident) >= self.resident_blocks:
                victim = next((v for v in self._resident if v not in keep), None)
                if victim is None:  # the step alone needs more than memory: plain LRU
                    victim = next(iter(self._resident))
                del self._resident[victim]
                out.append(victim)
                self._on_disk.add(victim)
            if b in self._on_disk:
                into.append(b)
            self._resident[b] = None
        return Plan(out, into)

    def discard(self, blocks: Iterable[int]) -> None:
        """Blocks whose content died (freed): no page-out, no page-in, as for freed memory."""
        for b in blocks:
            self._resident.pop(b, None)
            self._on_disk.discard(b)

    def run(self, plan: Plan) -> float:
        """Do a plan's I/O page by page; return the seconds it took."""
        t0 = time.perf_counter()
        ppb = self.pages_per_block
        for b in plan.out:
            for p in range(b * ppb, (b + 1) * ppb):
                self.file.write_page(p)
        for b in plan.into:
            for p in range(b * ppb, (b + 1) * ppb):
                self.file.read_page(p)
        elapsed = time.perf_counter() - t0
        self.stats.pages_out += len(plan.out) * ppb
        self.stats.pages_in += len(plan.into) * ppb
        self.stats.faults += len(plan.into)
        self.stats.fault_seconds += elapsed
        return elapsed

    async def touch(self, blocks: Iterable[int]) -> float:
        """Page in what a step touches (I/O off the event loop); the seconds it waited."""
        plan = self.plan(blocks)
        if not plan.out and not plan.into:
            return 0.0
        return await asyncio.to_thread(self.run, plan)

    def close(self) -> None:
        self.file.close()
