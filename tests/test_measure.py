"""``spark-harness loadgen``'s order of events around a point's load."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from spark_harness.loadgen import eventloop, kstamp
from spark_harness.plan import Plan
from spark_harness_testkit.groundtruth import TruthConfig, TruthServer
from tests.conftest import REPO
from tests.faults.conftest import plan


def run_point(
    tmp_path: Path, phases: dict[str, float], qos: dict[str, object]
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """One point of a plan with ``phases`` and ``qos`` against a truth server, run as
    Snakemake runs it: (the finished process, its run.json)."""
    cfg = plan(phases=phases)
    cfg["defaults"]["qos"] = qos
    spec = Plan(cfg, REPO).runs()[0].spec_json()
    with TruthServer(TruthConfig(ttft_ms=1, itl_ms=1)) as srv:
        cmd = [sys.executable, "-m", "spark_harness", "loadgen", "--endpoint", srv.base_url]
        cmd += ["--model", "truth", "--spec-json", spec, "--out", str(tmp_path / "point")]
        cmd += ["--failed-dir", str(tmp_path / "failed"), "--scratch", str(tmp_path / "qos")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, json.loads((tmp_path / "point/run.json").read_text())


def test_the_qos_perturbation_runs_from_before_warmup_to_after_cooldown(tmp_path: Path) -> None:
    """Starting fio (or the builtin generator) blocks for a moment; inside the load
    generator's event loop, at the load window's first edge, that moment delayed every
    request in flight, and stopping it at the window's end delayed the last ones. It
    now runs before the warm-up and stops after the cool-down, outside the loop."""
    asked = {"idle_s": 0.1, "warmup_s": 0.3, "load_s": 0.5, "cooldown_s": 0.2}
    _, run = run_point(tmp_path, asked, {"profile": "moderate", "tool": "builtin"})
    qos, phases = run["qos"], run["phases"]
    assert qos["started"]["tool"] == "builtin" and qos["stopped"]["summary"]
    assert phases["idle"][1] <= qos["started"]["started_ns"] <= phases["warmup"][0]
    assert qos["stopped"]["stopped_ns"] >= phases["cooldown"][1]


def test_an_io_scheduler_the_device_cannot_take_is_recorded_and_the_point_runs(
    tmp_path: Path,
) -> None:
    """``qos.io_scheduler`` is held around the whole point where it can be; where it
    cannot (no such scheduler, no root, no block device) the point runs under the
    scheduler it found and run.json says why, instead of failing the plan."""
    asked = {"idle_s": 0.1, "warmup_s": 0.1, "load_s": 0.3, "cooldown_s": 0.1}
    done, run = run_point(tmp_path, asked, {"io_scheduler": "no-such-scheduler"})
    record = run["io_scheduler"]
    assert record["requested"] == "no-such-scheduler" and record["applied"] is False
    assert "no-such-scheduler" in record["reason"]
    assert "not applied" in done.stderr


def test_the_unloaded_read_probe_runs_before_the_idle_phase(tmp_path: Path) -> None:
    """The device's unloaded read time (a read await's baseline) is measured in the
    directory contention goes to, after the server is ready and before the idle phase,
    whose own device reads are a baseline of their own; run.json says where and what."""
    from spark_harness.telemetry.devices import existing_ancestor

    asked = {"idle_s": 0.1, "warmup_s": 0.1, "load_s": 0.2, "cooldown_s": 0.1}
    done, run = run_point(tmp_path, asked, {"profile": "none"})
    # the load ran on the loop with the poll gap (plain HTTP: reads kernel-stamped)
    expected = eventloop.POLL_GAP_NS / 1000 if kstamp.KERNEL_STAMPS else 0
    assert run["loadgen"] == {"poll_gap_us": expected}
    probe = run["read_probe"]
    assert probe["directory"] == str(existing_ancestor(tmp_path / "qos"))
    if "unavailable" in probe:  # no block device or no O_DIRECT under the test's tmp
        assert "unloaded_read_ms" not in probe
        return
    assert probe["device"] and set(probe["unloaded_read_ms"]) >= {"4096"}
    log = done.stderr
    assert log.index("read probe") < log.index("idle baseline")


def test_an_external_server_that_stops_answering_fails_the_point_and_keeps_its_requests(
    tmp_path: Path,
) -> None:
    """An external server has no process to watch: one that goes away mid-load left a
    run of connection errors marked complete. Its failed requests now make the load
    generator ask the server again; no answer fails the point, with what was measured."""
    spec = Plan(plan(phases={"idle_s": 0.1, "warmup_s": 0.2, "load_s": 4.0}), REPO)
    spec_json = spec.runs()[0].spec_json()
    with TruthServer(TruthConfig(ttft_ms=1, itl_ms=1)) as srv:
        cmd = [sys.executable, "-m", "spark_harness", "loadgen", "--endpoint", srv.base_url]
        cmd += ["--model", "truth", "--spec-json", spec_json, "--out", str(tmp_path / "point")]
        cmd += ["--failed-dir", str(tmp_path / "failed"), "--scratch", str(tmp_path / "qos")]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        time.sleep(2.0)  # the server goes away during the load window
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-3000:]
    assert "no longer answers" in err
    (attempt,) = (tmp_path / "failed").rglob("run.json")
    run = json.loads(attempt.read_text())
    assert run["outcome"] == "failed" and run["reasons"] == ["server_unreachable"]
    records = [json.loads(line) for line in (attempt.parent / "requests.jsonl").open()]
    assert any(r["ok"] for r in records) and any(r["error_kind"] == "connect" for r in records)
    assert not (tmp_path / "point" / "run.json").exists()


def run_primed_point(tmp_path: Path, model: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One point against a truth server published as an endpoint file that asks for
    priming, as `serve` publishes a stack with ``prime``: (the process, the out dir)."""
    from spark_harness.contract import Endpoint

    spec = Plan(plan(phases={"idle_s": 0.1, "warmup_s": 0.1, "load_s": 0.3}), REPO)
    with TruthServer(TruthConfig(ttft_ms=1, itl_ms=1)) as srv:
        ep_file = tmp_path / "endpoint.json"
        prime = {"waves": [1, 2], "timeout_s": 10}
        ep = Endpoint("A", "external", srv.base_url, model, pid=0, prime=prime)
        ep.write(ep_file)
        cmd = [sys.executable, "-m", "spark_harness", "loadgen", "--endpoint-file", str(ep_file)]
        cmd += ["--spec-json", spec.runs()[0].spec_json(), "--out", str(tmp_path / "point")]
        cmd += ["--failed-dir", str(tmp_path / "failed"), "--scratch", str(tmp_path / "qos")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return done, tmp_path


def test_a_stack_that_asks_for_priming_is_primed_before_the_idle_baseline(tmp_path: Path) -> None:
    done, out = run_primed_point(tmp_path, "truth")
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((out / "point/run.json").read_text())
    assert [w["requests"] for w in run["prime"]["waves"]] == [1, 2]
    log = done.stderr
    assert log.index("primed") < log.index("idle baseline")


def test_a_failed_priming_request_fails_the_point_with_the_answer(tmp_path: Path) -> None:
    done, out = run_primed_point(tmp_path, "http-500")
    assert done.returncode == 1
    assert "priming wave 0 (1 at once) failed: HTTP 500" in done.stderr
    (attempt,) = (out / "failed").rglob("run.json")
    assert json.loads(attempt.read_text())["reasons"] == ["prime_failed"]
    assert not (out / "point" / "run.json").exists()
