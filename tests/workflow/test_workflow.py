"""The Snakemake DAG end to end, on a small plan in a temporary copy of the repository.

These run real Snakemake, real simulator servers, sidecars and load generators.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_workflow
from tests.workflow.smk import (
    PHASES,
    SMALL,
    interrupt,
    snakemake,
    start_snakemake,
    wait_no_orphans,
    write_config,
)

pytestmark = pytest.mark.workflow


def make_repo(tmp: Path, config: dict) -> Path:
    root = copy_workflow(tmp)
    write_config(root, config)
    return root


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A small plan run once, end to end (H_all)."""
    root = make_repo(tmp_path_factory.mktemp("wf"), SMALL)
    result = snakemake(root, "H_all")
    assert result.returncode == 0, result.out[-4000:]
    return root, result


def test_h_all_writes_data_contract_verdicts_and_figures(ran):
    root, _ = ran
    results = root / "results"
    for hyp in SMALL["hypotheses"]:
        verdict = json.loads((results / "summary" / hyp / "verdict.json").read_text())
        assert verdict["status"] in {"supported", "not supported", "inconclusive", "invalid"}
        assert list((results / "figures" / hyp).glob("*.png")), hyp
    runs = sorted(results.glob("raw/*/*/*/r*/run.json"))
    assert len(runs) == 6  # H0: 2 stacks x 2 points; H2B: 2 points
    for run_json in runs:
        run = json.loads(run_json.read_text())
        assert run["outcome"] in {"ok", "marked"}
        assert set(run["phases"]) >= {"idle", "warmup", "load", "cooldown"}
        reqs = (run_json.parent / "requests.jsonl").read_text().splitlines()
        assert any(json.loads(r)["phase"] == "load" for r in reqs)
        tel = [
            json.loads(t) for t in (run_json.parent / "telemetry.jsonl").read_text().splitlines()
        ]
        assert [t for t in tel if t.get("kind") == "sample"], run_json
    # the H2B points ran at H0's U_work for stack B
    h2b = json.loads(next(results.glob("raw/H2B/B/*/r0/run.json")).read_text())
    u_work = json.loads((results / "summary/H0/u_work/B.json").read_text())["u_work"]
    assert h2b["spec"]["load"]["users"] == u_work
    # services are gone once their point is done
    assert not list(results.glob("services/**/*.json"))


def test_no_server_sidecar_or_load_process_survives_the_run(ran):
    root, _ = ran
    assert wait_no_orphans(root) == []


def test_second_run_does_nothing(ran):
    root, _ = ran
    again = snakemake(root, "H_all")
    assert again.returncode == 0, again.out[-3000:]
    assert "Nothing to be done" in again.out
    assert again.job_counts() == {}


def test_editing_one_sweep_reruns_only_its_changed_points(ran):
    root, _ = ran
    cfg = copy.deepcopy(SMALL)
    cfg["hypotheses"]["H2B"]["sweep"][0]["values"] = [64, 256]
    original = (root / "config/config.yaml").read_text()
    try:
        write_config(root, cfg)
        dry = snakemake(root, "H_all", "-n")
    finally:
        (root / "config/config.yaml").write_text(original)
    assert dry.returncode == 0, dry.out[-3000:]
    assert dry.planned("loadgen") == [{"hyp": "H2B", "stack": "B", "point": "ctx-256", "rep": "0"}]
    counts = dry.job_counts()
    assert counts.get("ingest") == 1 and dry.planned("ingest") == [{"hyp": "H2B", "stack": "B"}]
    assert [j["hyp"] for j in dry.planned("summary")] == ["H2B"]
    assert "u_work" not in counts


def test_targeted_hypothesis_builds_what_it_needs_and_nothing_else(tmp_path):
    root = make_repo(tmp_path, SMALL)
    dry = snakemake(root, "H2B", "-n")
    assert dry.returncode == 0, dry.out[-3000:]
    points = sorted((j["hyp"], j["stack"], j["point"]) for j in dry.planned("loadgen"))
    assert points == [
        ("H0", "B", "users-1"),
        ("H0", "B", "users-2"),
        ("H2B", "B", "ctx-128"),
        ("H2B", "B", "ctx-64"),
    ]
    assert [j["hyp"] for j in dry.planned("summary")] == ["H2B"]
    assert dry.planned("u_work") == [{"stack": "B"}]


def test_bad_config_fails_before_any_server_starts(tmp_path):
    cfg = copy.deepcopy(SMALL)
    cfg["hypotheses"]["H0"]["sweeep"] = cfg["hypotheses"]["H0"].pop("sweep")
    root = make_repo(tmp_path, cfg)
    out = snakemake(root, "H_all")
    assert out.returncode != 0
    assert "sweeep" in out.out
    assert not (root / "results").exists()

    cfg = copy.deepcopy(SMALL)
    cfg["defaults"]["repetitions"] = "two"
    write_config(root, cfg)
    out = snakemake(root, "H_all")
    assert out.returncode != 0
    assert "repetitions" in out.out and "'two' is not of type 'integer'" in out.out
    assert not (root / "results").exists()


NEVER_READY = {
    "name": "never-ready",
    "kind": "command",
    "model": "m",
    "startup_timeout_s": 2,
    "command": {
        "processes": [
            {
                "name": "sleeper",
                "argv": [
                    "python3",
                    "-c",
                    "import sys, time; print('warming up', flush=True); time.sleep(300)",
                    "{workdir}",
                ],
            }
        ],
        "health": "/health",
    },
}


def test_server_never_ready_fails_with_log_tail_and_leaves_no_orphans(tmp_path):
    root = copy_workflow(tmp_path)
    (root / "config/stacks/never-ready.yaml").write_text(yaml.safe_dump(NEVER_READY))
    cfg = copy.deepcopy(SMALL)
    cfg["stacks"] = {"N": {"file": "config/stacks/never-ready.yaml"}}
    cfg["hypotheses"] = {
        "H0": {
            "stacks": ["N"],
            "sweep": [{"key": "load.users", "role": "concurrency", "values": [1]}],
        }
    }
    write_config(root, cfg)
    out = snakemake(root, "H0")
    assert out.returncode != 0
    log = (root / "results/logs/H0/N/users-1/r0/loadgen.log").read_text()
    assert "not ready after 2 s" in log
    assert "warming up" in log  # the server's own log tail
    assert wait_no_orphans(root) == []
    failed = list((root / "results/failed/H0/N/users-1/r0").glob("attempt-*/run.json"))
    assert failed and json.loads(failed[0].read_text())["reasons"] == ["server_not_ready"]


def test_ctrl_c_keeps_partial_data_and_leaves_no_orphans(tmp_path):
    cfg = copy.deepcopy(SMALL)
    cfg["defaults"]["phases"] = {**PHASES, "load_s": 60.0}
    cfg["hypotheses"] = {
        "H0": {
            "stacks": ["B"],
            "sweep": [{"key": "load.users", "role": "concurrency", "values": [2]}],
        }
    }
    root = make_repo(tmp_path, cfg)
    proc = start_snakemake(root, "H0")
    part = root / "results/raw/H0/B/users-2/r0/requests.jsonl.part"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 0):
        time.sleep(0.2)
    assert part.exists(), "load never started"
    interrupt(proc)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert wait_no_orphans(root) == []
    assert not (root / "results/raw/H0/B/users-2/r0/run.json").exists()
    attempts = list((root / "results/failed/H0/B/users-2/r0").glob("attempt-*"))
    assert attempts, proc.stdout.read()[-3000:] if proc.stdout else ""
    run = json.loads((attempts[0] / "run.json").read_text())
    assert run["outcome"] == "failed" and run["reasons"][0].startswith("interrupted")
    assert (attempts[0] / "requests.jsonl").read_text().strip()
