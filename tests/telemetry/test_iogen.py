"""The builtin generator's report: the same headline numbers as fio's, from known
latencies."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from spark_harness.telemetry.iogen import START_DEPTH, Throttle, Worker, next_depth, summary
from spark_harness.telemetry.qos import Profile

PROFILE = Profile(read_pct=50, block_kib=64, iodepth=1, jobs=1, file_mib=1)


def _block() -> memoryview:
    return memoryview(bytearray(PROFILE.block_kib * 1024))


def _worker(reads: list[float], writes: list[float]) -> Worker:
    w = Worker(Path("/nonexistent"), PROFILE, threading.Event(), 0, _block())
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
    w = Worker(Path("/nonexistent/iogen.0"), PROFILE, threading.Event(), 0, _block())
    w.run()
    assert w.error and "/nonexistent/iogen.0" in w.error


def test_next_depth_moves_toward_the_target_damped_and_clamped() -> None:
    # latency twice the target: the depth shrinks by sqrt(2), not by half
    assert next_depth(64, 0.008, 0.004, 128) == round(64 / math.sqrt(2))
    # half the target: it grows by sqrt(2)
    assert next_depth(64, 0.002, 0.004, 128) == round(64 * math.sqrt(2))
    assert next_depth(64, 0.004, 0.004, 128) == 64
    assert next_depth(100, 0.0001, 0.004, 128) == 128  # never above the profile's depth
    assert next_depth(2, 1.0, 0.004, 128) == 1  # never below one I/O
    assert next_depth(8, 0.0, 0.004, 128) == 128  # no latency measured: nothing to hold


def test_throttle_without_a_target_runs_every_worker() -> None:
    t = Throttle(16, None)
    assert t.active == 16
    t.follow(0.5)  # a slow interval changes nothing without a target
    assert t.active == 16
    assert t.report() == {
        "latency_target_ms": None,
        "depth_most": 16,
        "depth_mean": 16.0,
        "depth_min": 16,
        "depth_max": 16,
    }


def test_throttle_holds_back_workers_above_the_depth_until_it_grows() -> None:
    t = Throttle(16, 0.004)
    assert t.active == START_DEPTH
    stop = threading.Event()
    t.admit(START_DEPTH - 1, stop)  # inside the depth: returns at once
    passed = threading.Event()
    waiter = threading.Thread(target=lambda: (t.admit(12, stop), passed.set()), daemon=True)
    waiter.start()
    assert not passed.wait(0.2)  # worker 12 waits while the depth is 8
    t.follow(0.001)  # reads at a quarter of the target: the depth doubles to 16
    assert t.active == 16 and passed.wait(2.0)
    assert t.report()["latency_target_ms"] == pytest.approx(4.0)
    assert t.report()["depth_max"] == 16


def test_a_stop_releases_a_waiting_worker() -> None:
    t = Throttle(16, 0.004)
    stop = threading.Event()
    passed = threading.Event()
    waiter = threading.Thread(target=lambda: (t.admit(15, stop), passed.set()), daemon=True)
    waiter.start()
    assert not passed.wait(0.1)
    stop.set()
    t.set(t.active)  # what run() does on stop: wake the waiters
    assert passed.wait(2.0)
