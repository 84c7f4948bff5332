"""G3 storage is real: O_DIRECT I/O, visible in the process's I/O counters."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from spark_harness.iobuf import contiguous_share
from spark_harness.sim.diskio import BlockFile, read_file, write_cold_file
from spark_harness_testkit.host import thp_mode

from .simclient import device_backed, proc_read_bytes


def test_blocks_round_trip_through_the_device(tmp_path: Path) -> None:
    f = BlockFile(tmp_path / "g3.blocks", slot_bytes=64 * 1024, slots=32)
    try:
        assert f.path.stat().st_size == 64 * 1024 * 32
        tags = [os.urandom(16) for _ in range(32)]
        for slot, tag in enumerate(tags):
            assert f.write(slot, tag) > 0
        before = proc_read_bytes()
        for slot, tag in enumerate(tags):
            assert f.read(slot, tag) > 0
        read = proc_read_bytes() - before
        if device_backed(tmp_path):  # O_DIRECT always reaches the device: all counted
            assert read >= 32 * 64 * 1024
        with pytest.raises(OSError, match="does not hold the expected block"):
            f.read(0, tags[1])
    finally:
        f.close()
    assert not f.path.exists()


def test_a_read_floor_holds_fast_reads_but_still_reads_the_device(tmp_path: Path) -> None:
    floor = 0.03
    f = BlockFile(tmp_path / "g3.blocks", slot_bytes=64 * 1024, slots=4, min_read_s=floor)
    try:
        tag = os.urandom(16)
        f.write(0, tag)
        before = proc_read_bytes()
        t0 = time.perf_counter()
        seconds = [f.read(0, tag) for _ in range(3)]
        wall = time.perf_counter() - t0
        assert all(s >= floor for s in seconds) and wall >= 3 * floor
        assert wall < 3 * floor + 0.5  # the floor, not a multiple of it
        if device_backed(tmp_path):
            assert proc_read_bytes() - before >= 3 * 64 * 1024
        with pytest.raises(OSError, match="does not hold the expected block"):
            f.read(0, os.urandom(16))  # the check still runs under the floor
    finally:
        f.close()


def test_direct_io_is_used_where_the_filesystem_allows(tmp_path: Path) -> None:
    f = BlockFile(tmp_path / "g3.blocks", slot_bytes=4096, slots=1)
    try:
        probe = os.open(tmp_path / "probe", os.O_RDWR | os.O_CREAT | os.O_DIRECT)
        os.close(probe)
        assert f.direct
    except OSError:
        assert not f.direct
    finally:
        f.close()


def test_unaligned_slots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="multiple of"):
        BlockFile(tmp_path / "x", slot_bytes=1000, slots=1)


def test_cold_file_is_read_from_the_device(tmp_path: Path) -> None:
    path = tmp_path / "adapter.safetensors"
    write_cold_file(path, 4 * 2**20)
    before = proc_read_bytes()
    nbytes, seconds = read_file(path)
    assert nbytes == 4 * 2**20 and seconds > 0
    # dropped from the page cache after writing: the first read reaches the device
    if device_backed(tmp_path):
        assert proc_read_bytes() - before >= 3 * 2**20


def test_buffered_fallback_still_reads_from_the_device(tmp_path: Path, monkeypatch) -> None:
    real_open = os.open

    def refuse_direct(path, flags, *args):  # type: ignore[no-untyped-def]
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "O_DIRECT not supported")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuse_direct)
    f = BlockFile(tmp_path / "g3.blocks", slot_bytes=64 * 1024, slots=16)
    monkeypatch.undo()
    try:
        assert not f.direct
        tags = [os.urandom(16) for _ in range(16)]
        assert f.write_many(list(enumerate(tags))) == [None] * 16
        before = proc_read_bytes()
        assert f.read_many(list(enumerate(tags))) == [None] * 16
        if device_backed(tmp_path):  # written ranges were dropped from the page cache
            assert proc_read_bytes() - before >= 16 * 64 * 1024
        errors = f.read_many([(0, tags[1])])
        assert isinstance(errors[0], OSError)
    finally:
        f.close()


def _taken(f: BlockFile) -> int:
    with f._buffer() as buf:
        return id(buf)


def test_io_turns_through_one_pool_of_buffers_made_with_the_file(tmp_path: Path) -> None:
    """A read's wait on a virtual disk depends on how its buffer's pages lie in memory,
    so one buffer per thread made a draw per server start: I/O turns through a pool
    (at most POOL_BYTES of it, at least one buffer per thread), made when the file is:
    made at a reader thread's first read it cost ~100 ms there. Blocks still
    round-trip whichever buffer carries them."""
    import threading

    from spark_harness.sim.diskio import POOL_BYTES, POOL_MAX

    slot = 4 << 20  # 4 blocks fit POOL_BYTES
    f = BlockFile(tmp_path / "g3.blocks", slot_bytes=slot, slots=8)
    wide = BlockFile(tmp_path / "wide.blocks", slot_bytes=slot, slots=8, threads=6)
    try:
        n = POOL_BYTES // slot
        assert len(f.buffers) == n and len(wide.buffers) == 6  # one per thread at least
        mine = [_taken(f) for _ in range(2 * POOL_MAX)]
        assert set(mine) == {id(b) for b in f.buffers}
        assert mine[:n] == mine[n : 2 * n]  # in turn: the longest idle first
        other: list[int] = []
        t = threading.Thread(target=lambda: other.append(_taken(f)))
        t.start()
        t.join()
        assert other[0] == mine[0]  # one pool for every thread
        held = [f._free.get() for _ in range(n - 1)]  # all but one in use elsewhere
        assert {_taken(f) for _ in range(3)} == set(map(id, f.buffers)) - set(map(id, held))
        for b in held:
            f._free.put(b)
        tags = [os.urandom(16) for _ in range(8)]
        for s, tag in enumerate(tags):
            f.write(s, tag)
        for s, tag in reversed(list(enumerate(tags))):
            f.read(s, tag)
    finally:
        f.close()
        wide.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="page frames are hidden from non-root readers")
def test_g3_buffers_lie_in_huge_pages_where_the_kernel_gives_them(tmp_path: Path) -> None:
    """A G3 read into scattered pages waits for ring slots on a virtual disk without
    indirect descriptors; into one huge page it takes one segment (spark_harness.iobuf)."""
    if thp_mode() == "never":
        pytest.skip("transparent huge pages are off here")
    f = BlockFile(tmp_path / "g3.blocks", slot_bytes=256 << 10, slots=4)
    try:
        f.write(0, b"block-0")
        assert contiguous_share(f.buffers) == 1.0
    finally:
        f.close()
