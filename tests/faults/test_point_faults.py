"""Faults of one point's processes, without Snakemake: broken streams, a port in use, a
sampler that raises, a full results disk. Each runs the real ``spark-harness`` command
in its own process against a real server."""

from __future__ import annotations

import errno
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spark_harness.contract import Endpoint, MetricsSource
from spark_harness.files import read_jsonl
from spark_harness.plan import Plan
from spark_harness_testkit.groundtruth import TruthConfig, TruthServer
from tests.conftest import REPO
from tests.faults.conftest import plan, wait_for

pytestmark = pytest.mark.faults

CLI = [sys.executable, "-m", "spark_harness"]


def point_spec(**phases: float) -> str:
    """A resolved point spec of the small plan, with short phases."""
    run = Plan(plan(phases={"idle_s": 0.1, "warmup_s": 0.0, "cooldown_s": 0.0, **phases}), REPO)
    return run.runs()[0].spec_json()


def loadgen(
    url: str, model: str, out: Path, spec: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [*CLI, "loadgen", "--endpoint", url, "--model", model, "--spec-json", spec]
    cmd += ["--out", str(out / "point"), "--failed-dir", str(out / "failed")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def truth() -> TruthServer:
    with TruthServer(TruthConfig(ttft_ms=1, itl_ms=1, stall_s=30.0)) as srv:
        yield srv


# A truncated stream (connection reset, or no [DONE]), a malformed event and a stream
# that stops sending: each request is a recorded error of its kind, the point completes
# within its request timeout, and it is marked (over 1 % errors), never passed as ok.
STREAM_FAULTS = {
    "reset": "reset",
    "no-done": "bad_sse",
    "bad-json": "bad_sse",
    "stall": "timeout",
}


@pytest.mark.parametrize("mode", list(STREAM_FAULTS))
def test_broken_streams_are_recorded_errors_and_the_point_is_marked(truth, tmp_path, mode):
    spec = point_spec(load_s=1.0, request_timeout_s=0.5)
    t0 = time.monotonic()
    done = loadgen(truth.base_url, mode, tmp_path, spec)
    elapsed = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-3000:]
    assert elapsed < 30, "a broken stream held the point past its request timeout"
    run = json.loads((tmp_path / "point/run.json").read_text())
    assert run["outcome"] == "marked" and run["reasons"][0].startswith("errors_over_1pct")
    load = [r for r in read_jsonl(tmp_path / "point/requests.jsonl") if r["phase"] == "load"]
    assert load and all(not r["ok"] for r in load)
    assert {r["error_kind"] for r in load} == {STREAM_FAULTS[mode]}
    assert all(r["error"] for r in load)


def test_port_in_use_is_a_clear_error_and_no_endpoint_file(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        endpoint = tmp_path / "endpoint.json"
        cmd = [*CLI, "serve", "--stack", str(REPO / "config/stacks/sim-uma.yaml")]
        cmd += ["--port", str(port), "--endpoint-file", str(endpoint)]
        cmd += ["--workdir", str(tmp_path / "w")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 98, done.stderr[-2000:]
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert not endpoint.exists()


def test_a_sampler_that_raises_is_logged_once_and_the_others_go_on(truth, tmp_path):
    # the server's metrics URL answers 404: its sampler raises on every tick while the
    # system and block-device samplers keep sampling
    ep = Endpoint(
        stack="T",
        kind="external",
        base_url=truth.base_url,
        model="truth",
        pid=0,
        metrics=[MetricsSource(url=truth.base_url + "/no-metrics-here", source="vllm")],
        started_ns=time.time_ns(),
    )
    ep.write(tmp_path / "endpoint.json")
    spool, service, log = tmp_path / "spool.jsonl", tmp_path / "sidecar.json", tmp_path / "log"
    cmd = [*CLI, "sidecar", "--endpoint-file", str(tmp_path / "endpoint.json")]
    cmd += ["--service-file", str(service), "--spool", str(spool), "--cadence-ms", "100"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for("the sidecar file", service.exists, timeout=30)
        kinds = lambda: [r.get("kind") for r in read_jsonl(spool)]  # noqa: E731
        wait_for("ten samples", lambda: kinds().count("sample") >= 10, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()[-2000:]
    rows = read_jsonl(spool)
    samples = [r for r in rows if r.get("kind") == "sample"]
    assert all("mem_available_bytes" in s for s in samples[-5:])
    errors = [r["errors"] for r in rows if r.get("kind") == "meta" and r.get("errors")][-1]
    assert errors["metrics:vllm"]["count"] >= 5 and errors["metrics:vllm"]["first"]
    assert log.read_text().count("sampler metrics:vllm failed") == 1


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    probe += ["d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs $d"]
    return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unprivileged user+mount namespaces")
def test_full_results_disk_fails_the_point_and_keeps_what_was_written(truth, tmp_path):
    # A real ENOSPC: the point writes to a 64 KiB tmpfs mounted in a private mount
    # namespace; what is on it is copied out before the namespace goes away.
    disk, copy = tmp_path / "disk", tmp_path / "copy"
    disk.mkdir()
    copy.mkdir()
    spec = point_spec(load_s=3.0)
    script = (
        'mount -t tmpfs -o size=64k tmpfs "$1" || exit 90; shift; '
        '"$@"; rc=$?; cp -a "$D/." "$C/"; exit $rc'
    )
    cmd = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"]
    cmd += [str(disk), *CLI, "loadgen", "--endpoint", truth.base_url, "--model", "truth"]
    cmd += ["--spec-json", spec, "--out", str(disk / "point"), "--failed-dir", str(disk / "failed")]
    env = {"D": str(disk), "C": str(copy), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "disk_full" in done.stderr and "No space left" in done.stderr
    assert "Traceback" not in done.stderr
    # nothing that looks complete, and the requests written before the disk filled kept
    assert not (copy / "point/run.json").exists()
    assert not (copy / "point/requests.jsonl").exists()
    kept = list(copy.glob("**/requests.jsonl*"))
    assert kept, sorted(str(p) for p in copy.rglob("*"))
    lines = kept[0].read_text().splitlines()
    assert len(lines) > 10
    assert all(json.loads(line)["request_id"] for line in lines)  # no torn line


def test_a_failed_record_write_leaves_only_complete_lines(tmp_path, monkeypatch):
    # In-process twin of the ENOSPC row for machines without user namespaces: the disk
    # fills in the middle of a record (a short write, then ENOSPC).
    from spark_harness.loadgen import journal

    sink = journal.JournalFile(tmp_path / "requests.jsonl.part")
    sink.write({"request_id": "a", "phase": "load", "ok": True})
    real_write = journal.os.write
    monkeypatch.setattr(journal.os, "write", lambda fd, data: real_write(fd, data[:7]))
    with pytest.raises(OSError) as failed:
        sink.write({"request_id": "b", "phase": "load", "ok": True})
    assert failed.value.errno == errno.ENOSPC
    monkeypatch.setattr(journal.os, "write", real_write)
    sink.write({"request_id": "c", "phase": "load", "ok": True})
    sink.close()
    ids = [json.loads(line)["request_id"] for line in sink.path.read_text().splitlines()]
    assert ids == ["a", "c"]
