"""Faults around the workflow: real Snakemake, servers, sidecars and load generators in a
temporary copy of the repository. After every fault: no process of the copy survives
(PID scan), what was measured is kept, and the next run recovers.

The never-ready server and Ctrl-C during the load phase are in tests/workflow.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.conftest import (
    add_slow_stack,
    attempts,
    has_text,
    kill_server_of,
    make_repo,
    plan,
    wait_for,
)
from tests.workflow.smk import (
    interrupt,
    processes_of,
    snakemake,
    start_snakemake,
    wait_no_orphans,
    write_config,
)

pytestmark = [pytest.mark.faults, pytest.mark.workflow, pytest.mark.slow]

RAW = "results/raw/H0/{stack}/{point}/r0"


def run_json(root: Path, point: str, stack: str = "B") -> Path:
    return root / RAW.format(stack=stack, point=point) / "run.json"


def finish(proc) -> str:
    """Wait for a Snakemake started with start_snakemake and return its output."""
    out, _ = proc.communicate(timeout=120)
    return out or ""


def test_server_crash_mid_load_keeps_requests_and_rerun_redoes_only_that_point(tmp_path):
    root = make_repo(tmp_path, plan(phases={"load_s": 4.0}, users=[1, 2]))
    targets = [str(run_json(root, p).relative_to(root)) for p in ("users-1", "users-2")]
    # keep-going comes from the default profile, which Snakemake does not find on its own
    # for a Snakefile at the repository root (it looks in profiles/default): name it
    targets += ["--workflow-profile", "workflow/profiles/default"]
    proc = start_snakemake(root, *targets)
    parts = {
        p: root / RAW.format(stack="B", point=p) / "requests.jsonl.part"
        for p in ("users-1", "users-2")
    }

    def loading() -> str | None:
        return next((p for p, f in parts.items() if f.exists() and f.stat().st_size), None)

    wait_for("the first point's load", loading)
    crashed = loading()
    assert crashed is not None
    service = root / f"results/services/H0/B/{crashed}/r0/endpoint.json"
    kill_server_of(service)
    out = finish(proc)
    assert proc.returncode != 0, out[-3000:]
    assert wait_no_orphans(root) == []

    # the crashed point: failed, its requests kept, nothing that looks complete
    assert not run_json(root, crashed).exists()
    [failed] = attempts(root, crashed)
    assert failed["outcome"] == "failed" and failed["reasons"] == ["server_died"]
    kept = next((root / f"results/failed/H0/B/{crashed}/r0").glob("attempt-*/requests.jsonl"))
    assert kept.read_text().strip(), "the requests measured before the crash were lost"
    # the other point ran to completion (keep-going)
    other = "users-2" if crashed == "users-1" else "users-1"
    done = run_json(root, other)
    assert done.exists(), out[-4000:]
    assert json.loads(done.read_text())["outcome"] in {"ok", "marked"}
    before = done.stat().st_mtime_ns

    dry = snakemake(root, *targets, "-n")
    assert dry.returncode == 0, dry.out[-3000:]
    assert dry.planned("loadgen") == [{"hyp": "H0", "stack": "B", "point": crashed, "rep": "0"}]
    again = snakemake(root, *targets)
    assert again.returncode == 0, again.out[-3000:]
    assert json.loads(run_json(root, crashed).read_text())["outcome"] in {"ok", "marked"}
    assert done.stat().st_mtime_ns == before  # the good point was not redone
    assert len(attempts(root, crashed)) == 1  # the failed attempt is still there


def test_server_slower_than_latency_wait_is_waited_for_by_readiness(tmp_path):
    # Snakemake waits --latency-wait (5 s by default) for a service's output file; the
    # endpoint file is written as soon as the port is chosen, so a server that takes
    # longer than that to come up is waited for by the loadgen's readiness poll instead.
    root = make_repo(tmp_path, {})
    stack_file = add_slow_stack(root, delay_s=8.0)
    write_config(root, plan(stack="S", stack_file=stack_file, users=[1]))
    target = str(run_json(root, "users-1", "S").relative_to(root))
    out = snakemake(root, target, "--latency-wait", "5", timeout=180)
    assert out.returncode == 0, out.out[-3000:]
    run = json.loads(run_json(root, "users-1", "S").read_text())
    assert run["outcome"] in {"ok", "marked"}
    assert run["server_startup_s"] >= 8.0 and run["ready_wait_s"] > 5.0
    assert wait_no_orphans(root) == []


# ---------------------------------------------------------------- Ctrl-C, phase by phase
def _startup(root: Path) -> None:
    wait_for(
        "the server process",
        lambda: any("spark-harness serve" in cmd for _, cmd in processes_of(root)),
    )


def _readiness(root: Path) -> None:
    log = root / "results/logs/H0/S/users-1/r0/loadgen.log"  # made when the job starts
    wait_for("the loadgen job", log.exists)
    time.sleep(3.0)  # past its imports, polling a server that sleeps 30 s before binding
    assert not has_text(log, "ready after"), "the server came up too early"


def _idle(root: Path) -> None:
    log = root / "results/logs/H0/S/users-1/r0/loadgen.log"
    wait_for("the idle baseline", lambda: has_text(log, "idle baseline"))


def _cooldown(root: Path) -> None:
    part = root / RAW.format(stack="S", point="users-1") / "requests.jsonl.part"
    wait_for("a cool-down request", lambda: has_text(part, '"phase":"cooldown"'))


def _analysis(root: Path) -> None:
    wait_for(
        "an ingest, summary or figures job",
        lambda: any(".snakemake/scripts" in cmd for _, cmd in processes_of(root)),
        timeout=90,
    )


PHASE_CASES = {
    # phase: (when to press Ctrl-C, phase lengths, slow start-up, a failed attempt is kept)
    "startup": (_startup, {}, 30.0, False),
    "readiness": (_readiness, {}, 30.0, True),
    "idle": (_idle, {"idle_s": 30.0}, 0.0, True),
    "cooldown": (_cooldown, {"cooldown_s": 30.0}, 0.0, True),
    "analysis": (_analysis, {}, 0.0, False),
}


@pytest.mark.parametrize("phase", list(PHASE_CASES))
def test_ctrl_c_in_each_phase_leaves_no_orphans_and_the_next_run_recovers(tmp_path, phase):
    when, phases, delay, keeps_attempt = PHASE_CASES[phase]
    root = make_repo(tmp_path, {})
    stack_file = add_slow_stack(root, delay_s=delay) if delay else "config/stacks/sim-tiered.yaml"
    write_config(root, plan(phases=phases, stack="S", stack_file=stack_file, users=[1]))
    point_run = run_json(root, "users-1", "S")
    target = "H0" if phase == "analysis" else str(point_run.relative_to(root))
    proc = start_snakemake(root, target)
    try:
        when(root)
    except AssertionError:
        proc.kill()
        raise AssertionError(finish(proc)[-3000:]) from None
    interrupt(proc)
    out = finish(proc)
    assert proc.returncode != 0, out[-3000:]
    assert wait_no_orphans(root) == [], out[-3000:]

    if phase == "analysis":
        # the measured data is complete and untouched; only analysis is redone
        assert json.loads(point_run.read_text())["outcome"] in {"ok", "marked"}
        again = snakemake(root, target)
        assert again.returncode == 0, again.out[-3000:]
        assert "loadgen" not in again.job_counts()
        return
    assert not point_run.exists()
    kept = attempts(root, "users-1", stack="S")
    if keeps_attempt:
        assert kept and kept[-1]["reasons"][0].startswith("interrupted"), out[-3000:]
    # not locked, and the interrupted point is the one job of the next run; the services'
    # files are marked incomplete, so that run needs --rerun-incomplete (which the default
    # profile sets, when Snakemake finds it)
    dry = snakemake(root, target, "-n", "--rerun-incomplete")
    assert dry.returncode == 0, dry.out[-3000:]
    assert dry.planned("loadgen") == [{"hyp": "H0", "stack": "S", "point": "users-1", "rep": "0"}]


def test_sigkill_of_snakemake_leaves_no_orphans_and_rerun_incomplete_recovers(tmp_path):
    root = make_repo(tmp_path, plan(phases={"load_s": 6.0}, users=[1]))
    point_run = run_json(root, "users-1")
    target = str(point_run.relative_to(root))
    proc = start_snakemake(root, target)
    part = point_run.with_name("requests.jsonl.part")
    wait_for("the load phase", lambda: part.exists() and part.stat().st_size)
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake alone: its children must not survive it
    finish(proc)
    assert wait_no_orphans(root) == []
    assert not point_run.exists()

    # a SIGKILLed Snakemake leaves its lock behind: unlock, then rerun (the profile sets
    # --rerun-incomplete; it is given here too, as the documented recovery)
    unlock = snakemake(root, target, "--unlock")
    assert unlock.returncode == 0, unlock.out[-3000:]
    again = snakemake(root, target, "--rerun-incomplete")
    assert again.returncode == 0, again.out[-3000:]
    assert json.loads(point_run.read_text())["outcome"] in {"ok", "marked"}
    # the requests of the killed attempt were salvaged, not overwritten
    [salvaged] = attempts(root, "users-1")
    assert salvaged["reasons"] == ["abandoned"]
    kept = next((root / "results/failed/H0/B/users-1/r0").glob("attempt-*/requests.jsonl"))
    assert kept.read_text().strip()
    assert wait_no_orphans(root) == []
