"""The synthetic runs are exactly in the contract format and carry their plants."""

import json

import numpy as np
import pytest

from spark_harness import contract
from spark_harness.analysis.stats import percentile
from spark_harness.files import read_jsonl
from spark_harness_testkit.synthetic import RunSpec, World, write_plan, write_run
from tests.plans import make_plan


def test_files_follow_the_contract(tmp_path):
    d = write_run(tmp_path, RunSpec("H0", "A", "users-1", 0, axes={"load.users": 1}))
    assert d == tmp_path / "raw" / "H0" / "A" / "users-1" / "r0"
    requests = read_jsonl(d / "requests.jsonl")
    assert all(list(r) == list(contract.REQUEST_FIELDS) for r in requests)
    run = json.loads((d / "run.json").read_text())
    assert set(contract.RUN_KEYS) <= set(run)
    assert run["spec"]["axes"] == {"load.users": 1}
    assert set(run["phases"]) == {"idle", "warmup", "load", "cooldown"}
    telemetry = read_jsonl(d / "telemetry.jsonl")
    kinds = {t["kind"] for t in telemetry}
    assert kinds == {"sample", "unavailable"}
    fields = {k for t in telemetry if t["kind"] == "sample" for k in t}
    assert "disk_nvme0n1_r_await_ms" in fields and "kv_onboard_blocks_g3" in fields


def test_planted_percentiles_hold(tmp_path):
    d = write_run(
        tmp_path, RunSpec("H", "A", "p", 0, ttft_p50_ms=40, ttft_p99_ms=120, n_requests=2000)
    )
    ttft = np.sort([r["ttft_ms"] for r in read_jsonl(d / "requests.jsonl") if r["phase"] == "load"])
    assert percentile(ttft, 0.5) == pytest.approx(40, rel=0.02)
    assert percentile(ttft, 0.99) == pytest.approx(120, rel=0.05)


def test_same_spec_same_bytes(tmp_path):
    a = write_run(tmp_path / "a", RunSpec("H", "A", "p", 0, seed=5))
    b = write_run(tmp_path / "b", RunSpec("H", "A", "p", 0, seed=5))
    for name in ("requests.jsonl", "telemetry.jsonl", "run.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_failed_attempt_goes_to_the_failed_folder_truncated(tmp_path):
    d = write_run(tmp_path, RunSpec("H", "B", "p", 1, outcome="failed", reasons=["server_died"]))
    assert d == tmp_path / "failed" / "H" / "B" / "p" / "r1" / "attempt-1"
    run = json.loads((d / "run.json").read_text())
    assert run["outcome"] == "failed" and run["phases"]["load"][1] is None
    assert "cooldown" not in run["phases"]
    assert len([r for r in read_jsonl(d / "requests.jsonl") if r["phase"] == "load"]) == 120


def test_errors_have_no_ttft(tmp_path):
    d = write_run(tmp_path, RunSpec("H", "A", "p", 0, error_share=0.5))
    bad = [r for r in read_jsonl(d / "requests.jsonl") if not r["ok"]]
    assert bad and all(r["ttft_ms"] is None and r["error_kind"] == "http" for r in bad)


def test_world_covers_the_default_plan(tmp_path):
    plan = make_plan({"H0": {}, "H2B": {}, "H9": {}})
    dirs = write_plan(plan, tmp_path, World(retry=frozenset({("H9", "B2", "base", 0)})))
    assert sum(len(v) for v in dirs.values()) == len(plan.runs()) + 1
    h2b = json.loads((dirs[("H2B", "B")][0] / "run.json").read_text())
    assert h2b["spec"]["load"]["users"] == World().u_work  # the sentinel is resolved
    h9 = json.loads((dirs[("H9", "B2")][-1] / "run.json").read_text())
    assert "replay" in h9["phases"]
