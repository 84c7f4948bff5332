"""G3 storage is real: O_DIRECT I/O, visible in the process's I/O counters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_harness.sim.diskio import BlockFile, read_file, write_cold_file


def proc_read_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise AssertionError("no read_bytes in /proc/self/io")


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
        if f.direct:  # O_DIRECT always reaches the device: every byte is counted
            assert read >= 32 * 64 * 1024
        with pytest.raises(OSError, match="does not hold the expected block"):
            f.read(0, tags[1])
    finally:
        f.close()
    assert not f.path.exists()


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
    assert proc_read_bytes() - before >= 3 * 2**20
