"""``spark-harness sidecar`` as a process: start-up against a server that is still
starting, flush and stop signals, bad input, parent death, and its cadence under load."""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from spark_harness.telemetry.devices import DeviceNotFound, device_of
from spark_harness.telemetry.window import wait_sampling


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_lifecycle_endpoint_late_flush_and_stop(point: Any, tmp_path: Path) -> None:
    proc = point.start_sidecar("--cadence-ms", "100")
    # the sidecar publishes itself at once, before the server's endpoint file exists;
    # its consumer then waits for the first sample
    info = point.info()
    time.sleep(0.5)
    assert not any(r["kind"] == "sample" for r in _rows(point.spool))
    point.write_endpoint(g3_dir=str(tmp_path / "g3" / "not-yet"))
    wait_sampling(info, 20)
    assert info.pid == proc.pid and Path(info.spool) == point.spool and info.cadence_ms == 100
    assert info.clock["wall_ns"] > 0 and info.started_ns > 0
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGUSR1)
    _wait_for(lambda: any(r["kind"] == "flush" for r in _rows(point.spool)), 5, "flush marker")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    rows = _rows(point.spool)
    assert rows[0]["kind"] == "meta" and rows[-1]["kind"] == "meta"
    samples = [r for r in rows if r["kind"] == "sample"]
    assert len(samples) >= 5
    assert all(r["t_ns"] >= info.started_ns - 1_000_000_000 for r in samples)
    assert all("mem_available_bytes" in r and "server_read_bytes" in r for r in samples)
    header = rows[0]
    try:
        dev = device_of(tmp_path)
    except DeviceNotFound:
        assert any(r.get("source") == "disk" for r in rows if r["kind"] == "unavailable")
    else:
        assert header["g3_device"] == dev.token and header["devices"] == [dev.token]
        assert header["device_info"][dev.token]["holds"] == ["g3"]
        # all but the first (a baseline) and the flush sample (possibly too close to a
        # tick for a rate) carry the device's figures
        assert sum(f"disk_{dev.token}_r_s" in r for r in samples) >= len(samples) - 2
    sources = [r["source"] for r in rows if r["kind"] == "unavailable"]
    assert len(sources) == len(set(sources))  # each recorded once


def test_without_g3_the_spool_device_is_watched(point: Any) -> None:
    point.write_endpoint()
    proc = point.start_sidecar()
    point.sampling()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    header = _rows(point.spool)[0]
    try:
        dev = device_of(point.spool.parent)
    except DeviceNotFound:
        pytest.skip("the spool is not on a block device here")
    assert header["g3_device"] is None
    assert header["device_info"][dev.token]["holds"] == ["spool"]


def test_devices_given_by_name(point: Any, tmp_path: Path) -> None:
    try:
        dev = device_of(tmp_path)
    except DeviceNotFound:
        pytest.skip("no block device here")
    point.write_endpoint(g3_dir=str(tmp_path))
    proc = point.start_sidecar("--devices", f"/dev/{dev.name},{dev.name}")
    point.sampling()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    header = _rows(point.spool)[0]
    assert header["devices"] == [dev.token] and header["g3_device"] == dev.token


@pytest.mark.parametrize(
    ("args", "endpoint", "rc", "message"),
    [
        (["--devices", "no-such-disk"], {}, 2, "no block device named 'no-such-disk'"),
        (["--cadence-ms", "5"], {}, 2, "--cadence-ms must be at least 20"),
        (["--wait-timeout-s", "0.3"], None, 1, "did not appear"),
        ([], {"metrics": [{"url": "http://127.0.0.1:9/m", "format": "xml"}]}, 2, "'xml'"),
    ],
)
def test_bad_input_is_a_clear_error(
    point: Any, args: list[str], endpoint: dict | None, rc: int, message: str
) -> None:
    if endpoint is not None:
        point.write_endpoint(**endpoint)
    proc = point.start_sidecar(*args)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == rc
    assert message in out
    assert not point.service.exists()  # published at start, taken back on failure


def test_stop_before_sampling_exits_cleanly_and_takes_its_file_back(point: Any) -> None:
    proc = point.start_sidecar()  # no endpoint file: still waiting for the server
    point.info()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not point.service.exists()


def test_sidecar_stops_when_its_parent_dies(point: Any) -> None:
    point.write_endpoint()
    launcher = textwrap.dedent(
        f"""
        import subprocess, sys, time
        p = subprocess.Popen({[sys.executable, "-m", "spark_harness.telemetry", "sidecar"]!r}
                             + {point.args()!r})
        print(p.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    assert parent.stdout
    child = int(parent.stdout.readline())
    try:
        point.info()  # published before sampling: the parent dies during set-up
        parent.kill()  # as Snakemake's SIGKILL of a failed job's services
        parent.wait()
        _wait_for(
            lambda: (
                not psutil.pid_exists(child)
                or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
            ),
            5,
            "the orphaned sidecar to exit",
        )
    finally:
        parent.stdout.close()
        if psutil.pid_exists(child):
            os.kill(child, signal.SIGKILL)
    assert _rows(point.spool)[-1]["kind"] == "meta"  # it stopped cleanly


@pytest.mark.slow
def test_cadence_holds_under_full_cpu_load(point: Any) -> None:
    point.write_endpoint()
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        time.sleep(0.5)
        proc = point.start_sidecar("--cadence-ms", "200")
        point.sampling()
        time.sleep(6.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        for b in burners:
            b.kill()
            b.wait()
    times = [r["t_ns"] for r in _rows(point.spool) if r["kind"] == "sample"]
    gaps = [(b - a) / 1e6 for a, b in itertools.pairwise(times)]
    assert len(gaps) >= 25
    jitter = sorted(abs(g - 200.0) for g in gaps)
    assert statistics.median(gaps) == pytest.approx(200.0, abs=5.0)
    assert jitter[int(0.95 * (len(jitter) - 1))] < 40.0  # p95 deviation from the cadence
    assert max(gaps) < 400.0  # never a whole tick lost
