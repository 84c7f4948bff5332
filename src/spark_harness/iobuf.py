"""O_DIRECT buffers in physically contiguous memory (transparent huge pages).

Why it matters: a request to a virtio disk without indirect descriptors (virtio's
feature 28, off on the cloud VMs this project is tested on) takes one slot of the
disk's ring per physically contiguous run of its buffer, plus two. A 128 KiB buffer of
scattered 4 KiB pages takes 34 of the ring's 256 slots, so about seven such requests
fill the ring and the rest wait in the block layer for a tag, a wait the device's await
does not show and whose length depends on how each buffer's pages happen to lie. A
buffer inside one 2 MiB huge page takes three slots, as a real NVMe drive's PRP list
makes any layout cost the same.

:func:`contiguous_buffers` carves equal buffers out of an anonymous private mapping
advised ``MADV_HUGEPAGE`` and aligned to the huge page, so no buffer straddles two huge
pages. Where the kernel gives no huge pages (THP ``never``, fragmented memory) the
buffers are ordinary pages: still correct, only not contiguous;
:func:`contiguous_share` says which happened.
"""

from __future__ import annotations

import ctypes
import itertools
import mmap
import struct
from contextlib import suppress

HUGE_PAGE = 2 << 20  # x86-64 and arm64 (4 KiB base pages): a PMD-sized transparent huge page
PAGE = mmap.PAGESIZE


def contiguous_buffers(count: int, nbytes: int) -> list[memoryview]:
    """``count`` page-aligned writable buffers of ``nbytes`` each, huge-page-backed where
    the kernel allows. A buffer larger than a huge page spans several (then contiguous
    within each); smaller ones are packed so that none crosses a huge-page boundary."""
    if nbytes <= 0 or nbytes % PAGE:
        raise ValueError(f"buffer size must be a positive multiple of {PAGE}: {nbytes}")
    per_slab = max(1, HUGE_PAGE // nbytes)  # buffers per slab of whole huge pages
    slab = _round_up(nbytes, HUGE_PAGE) if per_slab == 1 else HUGE_PAGE
    span = -(-count // per_slab) * slab
    arena = mmap.mmap(-1, span + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    start = (-_address(arena)) % HUGE_PAGE
    with suppress(OSError, AttributeError, ValueError):  # no THP here: ordinary pages
        arena.madvise(mmap.MADV_HUGEPAGE, start, span)
    view = memoryview(arena)
    offsets = [start + (i // per_slab) * slab + (i % per_slab) * nbytes for i in range(count)]
    buffers = [view[o : o + nbytes] for o in offsets]
    for b in buffers:
        b[:] = bytes(nbytes)  # touch now: the huge page is taken at the first fault
    return buffers


def contiguous_share(buffers: list[memoryview]) -> float | None:
    """The share of ``buffers`` lying in one physically contiguous run, read from
    ``/proc/self/pagemap`` (None where page frames cannot be read: not root)."""
    try:
        with open("/proc/self/pagemap", "rb") as pagemap:
            whole = 0
            for b in buffers:
                frames = []
                base = _address(b)
                for off in range(0, len(b), PAGE):
                    pagemap.seek((base + off) // PAGE * 8)
                    entry = struct.unpack("Q", pagemap.read(8))[0]
                    frames.append(entry & ((1 << 55) - 1))
                if frames[0] == 0:
                    return None  # frames are hidden from unprivileged readers
                whole += all(b2 == b1 + 1 for b1, b2 in itertools.pairwise(frames))
            return whole / len(buffers) if buffers else None
    except OSError:
        return None


def _address(buffer: mmap.mmap | memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(buffer))


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit
