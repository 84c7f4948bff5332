"""/proc/diskstats -> iostat -x fields: fixtures with known answers, wraps, resets, and a
real O_DIRECT read checked against what the device counted."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from spark_harness.telemetry.devices import BlockDevice, DeviceNotFound, device_of
from spark_harness.telemetry.disk import DiskSampler, deltas, iostat, parse_diskstats
from spark_harness.telemetry.qos import Perturbation, lay_out

FIX = Path(__file__).parent / "fixtures"
NVME = BlockDevice("nvme0n1", 259, 0, "nvme0n1")
PART = BlockDevice("nvme0n1p1", 259, 1, "nvme0n1")
DM = BlockDevice("dm-0", 253, 0, "dm-0")

# nvme0n1 between the t0 and t1 fixtures, one second apart, computed by hand from the
# iostats.rst definitions: +100 reads, +2048 sectors, +250 ms reading, +50 writes,
# +800 sectors, +100 ms writing, +500 ms busy, +700 ms weighted
NVME_EXPECTED = {
    "r_s": 100.0,
    "w_s": 50.0,
    "rkb_s": 1024.0,
    "wkb_s": 400.0,
    "r_await_ms": 2.5,
    "w_await_ms": 2.0,
    "aqu_sz": 0.7,
    "util_pct": 50.0,
}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _sampler(
    tmp_path: Path, first: str, devices: list[BlockDevice]
) -> tuple[DiskSampler, Path, FakeClock]:
    stats = tmp_path / "diskstats"
    shutil.copy(FIX / first, stats)
    clock = FakeClock()
    return DiskSampler(devices, diskstats=stats, now=clock), stats, clock


def test_parse_diskstats_reads_every_device() -> None:
    stats = parse_diskstats((FIX / "diskstats_t0.txt").read_text())
    assert set(stats) == {"loop0", "nvme0n1", "nvme0n1p1", "dm-0"}
    nv = stats["nvme0n1"]
    assert (nv.reads, nv.sectors_read, nv.read_ms) == (1000, 200000, 5000)
    assert (nv.writes, nv.sectors_written, nv.write_ms) == (2000, 400000, 8000)
    assert (nv.io_ms, nv.weighted_ms) == (9000, 13000)


def test_iostat_fields_match_the_hand_computed_fixture() -> None:
    a = parse_diskstats((FIX / "diskstats_t0.txt").read_text())["nvme0n1"]
    b = parse_diskstats((FIX / "diskstats_t1.txt").read_text())["nvme0n1"]
    d = deltas(a, b)
    assert d is not None
    assert iostat(d, 1.0) == pytest.approx(NVME_EXPECTED)
    # the same increase over two seconds halves the rates, not the latencies
    half = iostat(d, 2.0)
    assert half["r_s"] == pytest.approx(50.0)
    assert half["r_await_ms"] == pytest.approx(2.5)
    assert half["util_pct"] == pytest.approx(25.0)


def test_idle_interval_reports_zero_await_like_iostat() -> None:
    a = parse_diskstats((FIX / "diskstats_t0.txt").read_text())["dm-0"]
    d = deltas(a, a)
    assert d is not None
    assert iostat(d, 0.2) == {k: 0.0 for k in NVME_EXPECTED}


def test_util_is_capped_at_100() -> None:
    a = parse_diskstats((FIX / "diskstats_t0.txt").read_text())["nvme0n1"]
    b = parse_diskstats((FIX / "diskstats_t1.txt").read_text())["nvme0n1"]
    d = deltas(a, b)
    assert d is not None
    assert iostat(d, 0.25)["util_pct"] == 100.0


def test_sampler_names_fields_per_device_and_uses_its_own_interval(tmp_path: Path) -> None:
    sampler, stats, clock = _sampler(tmp_path, "diskstats_t0.txt", [NVME, PART, DM])
    shutil.copy(FIX / "diskstats_t1.txt", stats)
    clock.t += 1.0
    out = sampler.sample()
    for key, value in NVME_EXPECTED.items():
        assert out[f"disk_nvme0n1_{key}"] == pytest.approx(value)
    assert out["disk_nvme0n1p1_r_s"] == pytest.approx(90.0)
    assert out["disk_nvme0n1p1_rkb_s"] == pytest.approx(1848 / 2)
    assert out["disk_dm_0_r_s"] == 0.0  # dm-0: a kernel name that is not a field token


def test_sampler_handles_32_bit_time_wraps(tmp_path: Path) -> None:
    sampler, stats, clock = _sampler(tmp_path, "diskstats_wrap_t0.txt", [NVME])
    shutil.copy(FIX / "diskstats_wrap_t1.txt", stats)
    clock.t += 1.0
    out = sampler.sample()
    assert {k.removeprefix("disk_nvme0n1_"): v for k, v in out.items()} == pytest.approx(
        NVME_EXPECTED
    )


def test_sampler_skips_the_interval_of_a_reset_then_resumes(tmp_path: Path) -> None:
    sampler, stats, clock = _sampler(tmp_path, "diskstats_t1.txt", [NVME])
    shutil.copy(FIX / "diskstats_reset_t1.txt", stats)  # device re-attached
    clock.t += 1.0
    assert sampler.sample() == {}
    stats.write_text(" 259 0 nvme0n1 13 0 104 3 0 0 0 0 0 3 3 0 0 0 0 0 0\n")
    clock.t += 1.0
    out = sampler.sample()
    assert out["disk_nvme0n1_r_s"] == pytest.approx(10.0)
    assert out["disk_nvme0n1_r_await_ms"] == pytest.approx(0.2)


def test_sampler_survives_a_vanished_device(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sampler, stats, clock = _sampler(tmp_path, "diskstats_t0.txt", [NVME, DM])
    stats.write_text((FIX / "diskstats_t0.txt").read_text().replace("nvme0n1 ", "gone "))
    for _ in range(3):
        clock.t += 0.2
        out = sampler.sample()
        assert not any(k.startswith("disk_nvme0n1_") for k in out)
        assert "disk_dm_0_r_s" in out
    assert sum("vanished" in r.message for r in caplog.records) == 1  # logged once
    shutil.copy(FIX / "diskstats_t0.txt", stats)
    clock.t += 0.2
    assert not any(k.startswith("disk_nvme0n1_") for k in sampler.sample())  # new baseline
    shutil.copy(FIX / "diskstats_t1.txt", stats)
    clock.t += 1.0
    assert sampler.sample()["disk_nvme0n1_r_s"] == pytest.approx(100.0)


# ------------------------------------------------------------- real device
READ_BYTES = 64 << 20
IO_BYTES = 128 << 10  # below max_sectors_kb on any device, so one request per read


def _direct_file(directory: Path) -> Path:
    """A file written with O_DIRECT, so its blocks are on the device and not cached."""
    path = directory / "odirect.bin"
    lay_out(path, READ_BYTES >> 20)
    return path


def _read_direct(path: Path) -> None:
    buf = mmap.mmap(-1, IO_BYTES)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        for off in range(0, READ_BYTES, IO_BYTES):
            assert os.preadv(fd, [buf], off) == IO_BYTES
    finally:
        os.close(fd)


class RecordingClock:
    """time.monotonic, remembering each reading (the sampler's interval)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self) -> float:
        self.times.append(time.monotonic())
        return self.times[-1]


def test_real_o_direct_read_is_counted_within_5_percent(tmp_path: Path) -> None:
    try:
        dev = device_of(tmp_path)
        path = _direct_file(tmp_path)
    except DeviceNotFound as e:
        pytest.skip(f"temporary directory is not on a block device: {e}")
    except OSError as e:
        pytest.skip(f"O_DIRECT not supported here: {e}")
    expected_ops = READ_BYTES // IO_BYTES
    attempts = []
    # other processes may use the same disk meanwhile; they can only add I/O, so no
    # attempt may count less, and one clean attempt out of five shows the arithmetic
    for _ in range(5):
        clock = RecordingClock()
        sampler = DiskSampler([dev], now=clock)
        _read_direct(path)
        out = sampler.sample()
        dt = clock.times[-1] - clock.times[-2]
        ops = out[f"disk_{dev.token}_r_s"] * dt
        read = out[f"disk_{dev.token}_rkb_s"] * dt * 1024
        attempts.append((round(ops / expected_ops, 4), round(read / READ_BYTES, 4)))
        assert ops >= 0.95 * expected_ops and read >= 0.95 * READ_BYTES, attempts
        assert out[f"disk_{dev.token}_r_await_ms"] > 0
        if ops <= 1.05 * expected_ops and read <= 1.05 * READ_BYTES:
            break
    else:
        pytest.fail(f"device counted over 5 % extra in every attempt (ops, bytes): {attempts}")


@pytest.mark.slow
def test_agrees_with_sysstat_iostat_under_steady_load(tmp_path: Path) -> None:
    """Where sysstat is installed: the same intervals, side by side with ``iostat -x``."""
    if shutil.which("iostat") is None:
        pytest.skip("sysstat's iostat is not installed")
    try:
        dev = device_of(tmp_path)
    except DeviceNotFound as e:
        pytest.skip(f"not on a block device: {e}")
    tool = "fio" if shutil.which("fio") else "builtin"
    with Perturbation("moderate", tool, tmp_path / "g3", tmp_path / "out"):
        time.sleep(0.5)
        sampler = DiskSampler([dev])
        iostat_proc = subprocess.Popen(
            ["iostat", "-x", "-d", "-y", "-o", "JSON", dev.name, "2", "2"],
            stdout=subprocess.PIPE,
            text=True,
        )
        ours = []
        for _ in range(2):
            time.sleep(2.0)
            ours.append(sampler.sample())
        report = json.loads(iostat_proc.communicate(timeout=10)[0])
    theirs = [s["disk"][0] for s in report["sysstat"]["hosts"][0]["statistics"]]
    pairs = {"r/s": "r_s", "w/s": "w_s", "rkB/s": "rkb_s", "wkB/s": "wkb_s",
             "r_await": "r_await_ms", "w_await": "w_await_ms", "aqu-sz": "aqu_sz",
             "util": "util_pct"}  # fmt: skip
    # the formulas are checked exactly against fixed counters above; here the two tools'
    # 2 s windows start apart by iostat's own start-up (tens of ms on a busy machine),
    # over a load that is steady only on average: 10 % apart at most
    for mine, iostat_row in zip(ours, theirs, strict=True):
        for theirs_key, ours_key in pairs.items():
            assert mine[f"disk_{dev.token}_{ours_key}"] == pytest.approx(
                iostat_row[theirs_key], rel=0.1, abs=0.1
            ), theirs_key
