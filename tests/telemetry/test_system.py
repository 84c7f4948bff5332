"""Host CPU, memory and paging: arithmetic on known inputs, and planted load."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import psutil
import pytest

from spark_harness.telemetry.system import SystemSampler, cpu_shares, parse_meminfo, parse_vmstat

Times = namedtuple("Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_cpu_shares_are_percent_of_all_cpus() -> None:
    a = Times(100, 0, 50, 800, 10, 0, 0, 0, 0, 0)
    # 2 CPUs over one second: 0.5 s user, 0.3 s niced, 0.2 s system, 0.4 s iowait,
    # 0.6 s idle; guest time is part of user already and must not count twice
    b = Times(100.5, 0.3, 50.2, 800.6, 10.4, 0, 0, 0, 0.5, 0)
    assert cpu_shares(a, b) == pytest.approx(
        {"cpu_user_pct": 40.0, "cpu_system_pct": 10.0, "cpu_iowait_pct": 20.0}
    )


def test_cpu_shares_refuse_intervals_too_short_to_tell() -> None:
    a = Times(100, 0, 50, 800, 10, 0, 0, 0, 0, 0)
    assert cpu_shares(a, a._replace(user=100.01)) is None


def test_parse_vmstat_takes_only_the_counters_asked_for() -> None:
    text = "nr_free_pages 12\npgmajfault 345\npswpin 6\npswpout 7\npgfault 999\n"
    assert parse_vmstat(text) == {"pgmajfault": 345, "pswpin": 6, "pswpout": 7}


def test_parse_meminfo_gives_bytes() -> None:
    text = (
        "MemTotal:       24000000 kB\nMemFree:         1000000 kB\n"
        "MemAvailable:   20000000 kB\nBuffers:           50000 kB\n"
        "Cached:          3000000 kB\nSwapCached:            0 kB\n"
        "SwapTotal:       2000000 kB\nSwapFree:        1500000 kB\n"
    )
    assert parse_meminfo(text) == {
        "mem_available_bytes": 20000000 * 1024,
        "mem_cached_bytes": 3000000 * 1024,
        "swap_used_bytes": 500000 * 1024,
    }


def test_memory_agrees_with_psutil() -> None:
    out = SystemSampler().sample()
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    assert out["mem_available_bytes"] == pytest.approx(vm.available, rel=0.05)
    assert out["swap_used_bytes"] == pytest.approx(swap.used, abs=16 << 20)


def test_live_sample_has_sane_values() -> None:
    s = SystemSampler()
    time.sleep(0.3)
    out = s.sample()
    for key in ("cpu_user_pct", "cpu_system_pct", "cpu_iowait_pct"):
        assert 0.0 <= out[key] <= 100.0
    assert out["cpu_user_pct"] + out["cpu_system_pct"] + out["cpu_iowait_pct"] <= 100.0 + 1e-9
    assert (
        0 < out["mem_available_bytes"] <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    )
    assert out["mem_cached_bytes"] >= 0 and out["swap_used_bytes"] >= 0
    assert out["pgmajfault_per_s"] >= 0 and out["pswpin_per_s"] >= 0


def test_a_busy_process_shows_as_user_time() -> None:
    s = SystemSampler()
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        out = s.sample()
    finally:
        burner.kill()
        burner.wait()
    # one busy core of os.cpu_count(): at least 60 % of its share
    assert out["cpu_user_pct"] >= 0.6 * 100.0 / os.cpu_count()


def test_reading_an_uncached_mapping_shows_major_faults(tmp_path: Path) -> None:
    path = tmp_path / "cold.bin"
    path.write_bytes(os.urandom(16 << 20))
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    t0 = time.monotonic()
    s = SystemSampler()
    time.sleep(0.05)
    with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as m:
        m.madvise(mmap.MADV_RANDOM)  # one fault per page, no read-around
        pages = len(m) // mmap.PAGESIZE
        for i in range(pages):
            m[i * mmap.PAGESIZE]
    os.close(fd)
    time.sleep(0.05)
    out = s.sample()
    # rate x the test's elapsed time bounds the counted faults from above
    assert out["pgmajfault_per_s"] * (time.monotonic() - t0) >= pages // 4
