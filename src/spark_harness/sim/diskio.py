"""Real storage for G3 and LoRA adapters: timed reads and writes of real files.

G3 is one file of fixed-size slots (one KV block each) in the configured directory,
written and read with ``O_DIRECT`` so every read reaches the device (and shows in
``/proc/<pid>/io`` ``read_bytes``, block-device counters and iowait). Where the
filesystem refuses ``O_DIRECT`` (some overlays, older tmpfs), I/O is buffered and each
written or read range is dropped from the page cache (``fdatasync`` +
``POSIX_FADV_DONTNEED``), so reads still come from the device whenever there is one.

Every block carries its hash in its first bytes, and a read checks it: what comes back
is the block that was written, not a zero page.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from spark_harness.iobuf import contiguous_buffers
from spark_harness.sim.config import IO_ALIGN

POOL_BYTES = 16 << 20  # I/O buffers of a file: as many blocks as fit, at most POOL_MAX
POOL_MAX = 32


class StorageError(OSError):
    """The G3 or LoRA storage cannot be set up (no space, not writable)."""


def create_preallocated(path: Path, nbytes: int, what: str) -> tuple[int, bool]:
    """Create ``path`` (which must not exist) with ``nbytes`` reserved on its filesystem:
    (file descriptor, whether it is ``O_DIRECT``). Space is reserved up front so a full
    disk fails here, naming ``what`` and the directory, not in the middle of a run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    direct = True
    try:
        fd = os.open(path, flags | os.O_DIRECT, 0o600)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise StorageError(e.errno, f"cannot create {what} file {path}: {e.strerror}") from e
        direct = False
        fd = os.open(path, flags, 0o600)
    try:
        os.posix_fallocate(fd, 0, nbytes)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
            os.close(fd)
            path.unlink(missing_ok=True)
            need = f"{nbytes / 2**20:.0f} MiB for {what}"
            raise StorageError(
                e.errno, f"cannot reserve {need} in {path.parent}: {e.strerror}"
            ) from e
        os.ftruncate(fd, nbytes)  # no fallocate here: a sparse file of the same size
    return fd, direct


class BlockFile:
    """``slots`` blocks of ``slot_bytes`` in one preallocated file; thread-safe I/O."""

    def __init__(
        self,
        path: Path,
        slot_bytes: int,
        slots: int,
        seed: int = 0,
        min_read_s: float = 0.0,
        threads: int = 1,
    ) -> None:
        """``min_read_s``: the least a block read lasts (a modeled drive no faster than
        that): the real read always runs, and a faster one waits out the rest while it
        holds its place in the queue; a slower one (a busy device) shows its own time.
        ``threads``: the most reads and writes in flight at once (one buffer each)."""
        if slot_bytes % IO_ALIGN:
            raise ValueError(f"slot_bytes must be a multiple of {IO_ALIGN}")
        self.path = path
        self.slot_bytes = slot_bytes
        self.slots = slots
        self.min_read_s = min_read_s
        self._fd, self.direct = create_preallocated(path, slot_bytes * slots, "G3")
        # one content pattern for every block; the hash goes in front of it per write
        self._pattern = random.Random(seed).randbytes(min(slot_bytes, 1 << 16))
        self.buffers = self._make_buffers(max(threads, min(POOL_MAX, POOL_BYTES // slot_bytes)))
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for buf in self.buffers:
            self._free.put(buf)

    def _make_buffers(self, count: int) -> list[memoryview]:
        """The file's I/O buffers, made here and not at a thread's first read: making
        them (mapping, faulting in huge pages, filling) took ~100 ms per reader thread,
        and H9's first replay wave, the first G3 reads of a server, waited 0-100 ms for
        it. They lie in huge pages (:mod:`spark_harness.iobuf`): on a virtual disk without
        indirect descriptors a read of a buffer of scattered pages waits for ring slots,
        longer the more runs its pages make (a lone reader's 256 KiB reads beside a busy
        device: 1.1-1.7 ms from one huge page, 2.5-3.6 ms from 64 scattered pages,
        alternating trials). More buffers than threads in case the kernel gives no huge
        pages: then each read draws a layout, and I/O turning through many averages the
        draws instead of making one draw per server start (H4B's heavy repetitions once
        fell into two levels so)."""
        buffers = contiguous_buffers(count, self.slot_bytes)
        for buf in buffers:
            self._fill(buf)
        return buffers

    @contextlib.contextmanager
    def _buffer(self) -> Iterator[memoryview]:
        """The longest-idle buffer, for one read or write."""
        buf = self._free.get()
        try:
            yield buf
        finally:
            self._free.put(buf)

    def _fill(self, buf: memoryview) -> None:
        for off in range(0, self.slot_bytes, len(self._pattern)):
            chunk = self._pattern[: self.slot_bytes - off]
            buf[off : off + len(chunk)] = chunk

    def write(self, slot: int, tag: bytes) -> float:
        """Write block ``slot`` tagged with ``tag``; return the seconds it took."""
        offset = slot * self.slot_bytes
        with self._buffer() as buf:
            buf[: len(tag)] = tag
            t0 = time.perf_counter()
            n = os.pwritev(self._fd, [buf], offset)
            if not self.direct:
                os.fdatasync(self._fd)
                os.posix_fadvise(self._fd, offset, self.slot_bytes, os.POSIX_FADV_DONTNEED)
            elapsed = time.perf_counter() - t0
        if n != self.slot_bytes:
            raise OSError(errno.EIO, f"short write to G3 slot {slot}: {n} bytes")
        return elapsed

    def read(self, slot: int, tag: bytes) -> float:
        """Read block ``slot``, check it carries ``tag``; return the seconds it took."""
        offset = slot * self.slot_bytes
        with self._buffer() as buf:
            t0 = time.perf_counter()
            n = os.preadv(self._fd, [buf], offset)
            if not self.direct:
                os.posix_fadvise(self._fd, offset, self.slot_bytes, os.POSIX_FADV_DONTNEED)
            if n != self.slot_bytes:
                raise OSError(errno.EIO, f"short read from G3 slot {slot}: {n} bytes")
            if buf[: len(tag)] != tag:
                raise OSError(errno.EIO, f"G3 slot {slot} does not hold the expected block")
        return _lasting(t0, self.min_read_s)

    def write_many(self, blocks: list[tuple[int, bytes]]) -> list[OSError | None]:
        """Write (slot, tag) pairs in order; one error (or None) per block."""
        return _each(self.write, blocks)

    def read_many(self, blocks: list[tuple[int, bytes]]) -> list[OSError | None]:
        """Read (slot, tag) pairs in order; one error (or None) per block."""
        return _each(self.read, blocks)

    def close(self, remove: bool = True) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _each(
    op: Callable[[int, bytes], float], blocks: list[tuple[int, bytes]]
) -> list[OSError | None]:
    errors: list[OSError | None] = []
    for slot, tag in blocks:
        try:
            op(slot, tag)
            errors.append(None)
        except OSError as e:
            errors.append(e)
    return errors


def write_cold_file(path: Path, nbytes: int) -> None:
    """Create ``path`` with ``nbytes`` of data on the device and out of the page cache.

    Used for LoRA adapters: creating them is set-up; the first load must be a real read.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(min(nbytes, 1 << 20))
    with open(path, "wb") as fh:
        left = nbytes
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            fh.write(piece)
            left -= len(piece)
        fh.flush()
        os.fsync(fh.fileno())
        os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def read_file(path: Path, min_read_s: float = 0.0) -> tuple[int, float]:
    """Read a whole file through the page cache; return (bytes, seconds). A read faster
    than ``min_read_s`` waits out the rest (a modeled drive; see :class:`BlockFile`)."""
    t0 = time.perf_counter()
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(1 << 20):
            total += len(chunk)
    return total, _lasting(t0, min_read_s)


def _lasting(t0: float, floor_s: float) -> float:
    """Seconds since ``t0`` (``perf_counter``), once at least ``floor_s`` have passed."""
    elapsed = time.perf_counter() - t0
    if elapsed < floor_s:
        time.sleep(floor_s - elapsed)
        elapsed = time.perf_counter() - t0
    return elapsed
