"""The v2.5 plan: its own track, ids, results root, and no v3 hypothesis leaking in."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from spark_harness.backfill import convert
from spark_harness.plan import Plan, PlanError, load_config
from tests.conftest import REPO, copy_workflow
from tests.workflow.smk import snakemake

V25 = REPO / "config" / "plan_v2.5.yaml"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "legacy_runs"


def v25() -> dict:
    return load_config(V25)


def test_v25_plan_expands_with_its_own_ids_and_root() -> None:
    plan = Plan(v25(), base_dir=REPO)
    assert plan.track == "v2.5" and plan.results == "results-v2.5"
    assert list(plan.hypotheses) == [f"H{i}" for i in range(9)]
    assert plan.analytical() == ["H3", "H7", "H8"]
    assert {r.spec["server"]["sim"]["mode"] for r in plan.runs("H2")} == {"paging"}
    memory = [r.spec["server"]["sim"]["resident_blocks"] for r in plan.runs("H2") if r.rep == 0]
    assert memory == [512, 256, 144, 96, 64]


def test_ids_are_checked_against_the_track() -> None:
    cfg = v25()
    cfg["hypotheses"]["H2A"] = {"stacks": ["A"]}
    with pytest.raises(PlanError, match="H2A"):
        Plan(cfg, base_dir=REPO)
    v3 = load_config(REPO / "config" / "config.yaml")
    v3b = copy.deepcopy(v3)
    v3b["hypotheses"]["H2"] = {"stacks": ["A"]}
    with pytest.raises(PlanError, match="H2"):
        Plan(v3b, base_dir=REPO)
    assert Plan(v3, base_dir=REPO).track == "v3"


@pytest.mark.workflow
@pytest.mark.slow
def test_snakemake_runs_the_v25_plan_alone_and_v3_unchanged(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "repo")
    v25_run = snakemake(root, "-n", "H_all", "--configfile", "config/plan_v2.5.yaml")
    assert v25_run.returncode == 0, v25_run.out[-3000:]
    hyps = {j["hyp"] for j in v25_run.planned("loadgen")}
    assert hyps == {"H0", "H1", "H2", "H4", "H5", "H6"}  # no H2A/H2B/H9 of the v3 plan
    assert "results-v2.5/raw/H2/P/mem-64/r2/run.json" in v25_run.out
    assert "results/raw" not in v25_run.out
    v3_run = snakemake(root, "-n", "H_all")
    assert v3_run.returncode == 0, v3_run.out[-3000:]
    assert {"H2A", "H2B", "H9"} <= {j["hyp"] for j in v3_run.planned("loadgen")}


@pytest.mark.workflow
@pytest.mark.slow
def test_an_imported_run_is_an_input_of_its_ingest_job(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "repo")
    cfg = yaml.safe_load((root / "config" / "plan_v2.5.yaml").read_text())
    cfg["hypotheses"] = {"H0": cfg["hypotheses"]["H0"]}
    (root / "config" / "small.yaml").write_text(yaml.safe_dump(cfg))
    target = "results-v2.5/ingest/H0/A/points.parquet"
    before = snakemake(root, "-n", target, "--configfile", "config/small.yaml")
    assert "results-v2.5/imported" not in before.out
    done = convert(FIXTURES / "h0-c8", root / "results-v2.5", "H0")
    after = snakemake(root, "-n", target, "--configfile", "config/small.yaml")
    assert after.returncode == 0, after.out[-3000:]
    assert str((done.dest / "run.json").relative_to(root)) in after.out
