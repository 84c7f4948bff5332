"""The builtin generator's report: the same headline numbers as fio's, from known
latencies."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from spark_harness.telemetry.iogen import Worker, summary
from spark_harness.telemetry.qos import Profile

PROFILE = Profile(read_pct=50, block_kib=64, iodepth=1, jobs=1, file_mib=1)


def _worker(reads: list[float], writes: list[float]) -> Worker:
    w = Worker(Path("/nonexistent"), PROFILE, threading.Event(), seed=0)
    w.lat = {"read": list(reads), "write": list(writes)}
    w.count = {"read": len(reads), "write": len(writes)}
    w.total_s = {"read": sum(reads), "write": sum(writes)}
    return w


def test_summary_from_planted_latencies() -> None:
    reads = [0.001] * 99 + [0.101]  # mean 2 ms, p99 1 ms (99th of 100, nearest-rank)
    out = summary([_worker(reads, [0.004] * 50), _worker([], [0.002] * 50)], 2.0, 64)
    assert out == pytest.approx(
        {
            "runtime_s": 2.0,
            "read_iops": 50.0,
            "read_mib_s": 50.0 * 64 / 1024,
            "read_lat_mean_us": 2000.0,
            "read_lat_p99_us": 1000.0,
            "write_iops": 50.0,
            "write_mib_s": 50.0 * 64 / 1024,
            "write_lat_mean_us": 3000.0,
            "write_lat_p99_us": 4000.0,
        }
    )


def test_worker_reports_a_file_it_cannot_open() -> None:
    w = Worker(Path("/nonexistent/iogen.0"), PROFILE, threading.Event(), seed=0)
    w.run()
    assert w.error and "/nonexistent/iogen.0" in w.error
