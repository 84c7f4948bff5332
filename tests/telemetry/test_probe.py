"""The unloaded read probe: real O_DIRECT reads of a real file, checked against what the
kernel counted for the device."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_harness.telemetry import probe
from spark_harness.telemetry.devices import DeviceNotFound, device_of
from spark_harness.telemetry.disk import parse_diskstats


def _skip_unless_direct(tmp_path: Path) -> None:
    try:
        device_of(tmp_path)
        probe.unloaded_read_ms(tmp_path, max_bytes=4096)
    except DeviceNotFound as e:
        pytest.skip(f"temporary directory is not on a block device: {e}")
    except probe.ProbeUnavailable as e:
        pytest.skip(f"O_DIRECT not supported here: {e}")


def test_each_size_up_to_the_largest_request_is_timed_and_the_file_removed(tmp_path):
    _skip_unless_direct(tmp_path)
    ms = probe.unloaded_read_ms(tmp_path, max_bytes=65536)
    assert list(ms) == [4096, 16384, 65536]  # a larger read would be split in requests
    assert all(0 < t < 1000 for t in ms.values())
    assert list(tmp_path.iterdir()) == []


def test_probe_agrees_with_the_kernels_read_time(tmp_path, monkeypatch):
    """Ground truth: the device's own counters over the probe's reads. The probe times
    each read around the system call, so it may exceed the kernel's time by the call's
    overhead, never fall below it beyond the counters' 1 ms resolution. Other processes
    may read the same device meanwhile: an attempt that counted extra reads is redone."""
    _skip_unless_direct(tmp_path)
    dev = device_of(tmp_path)
    monkeypatch.setattr(probe, "SIZES", (65536,))
    monkeypatch.setattr(probe, "READS_PER_SIZE", 200)
    seen = []
    for _ in range(5):
        before = parse_diskstats(Path("/proc/diskstats").read_text(), {dev.name})[dev.name]
        ms = probe.unloaded_read_ms(tmp_path)[65536]
        after = parse_diskstats(Path("/proc/diskstats").read_text(), {dev.name})[dev.name]
        reads = after.reads - before.reads
        kernel = (after.read_ms - before.read_ms) / reads
        seen.append((reads, round(kernel, 4), round(ms, 4)))
        assert reads >= 200, seen  # every probe read reached the device
        if reads <= 205:
            break
    else:
        pytest.skip(f"the device was busy with other reads in every attempt: {seen}")
    assert ms >= kernel - 1.0 / reads, seen
    assert ms <= kernel + max(0.2, 0.5 * kernel), seen


def test_record_names_the_device_and_the_curve(tmp_path):
    _skip_unless_direct(tmp_path)
    rec = probe.record(tmp_path / "not-yet" / "made")  # measured where the path would be
    assert rec["directory"] == str(tmp_path)
    assert rec["device"] == device_of(tmp_path).token
    curve = rec["unloaded_read_ms"]
    assert isinstance(curve, dict) and "4096" in curve


def test_record_without_a_block_device_says_why(tmp_path):
    shm = Path("/dev/shm")
    try:
        device_of(shm)
    except (DeviceNotFound, OSError):
        rec = probe.record(shm)
        assert "unloaded_read_ms" not in rec
        assert "no block device" in str(rec["unavailable"])
    else:
        pytest.skip("/dev/shm is on a block device here")


def test_largest_request_of_an_unknown_disk_is_unknown():
    assert probe.max_request_bytes("no-such-disk") is None
