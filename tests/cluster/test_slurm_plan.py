"""A small real plan (simulator, sidecar, load generator, analysis) run locally and on SLURM.

Verdict files hold measured statistics, so no two runs, local or not, write the same
bytes. "The same verdicts" is therefore checked in two parts:

1. measured independently, locally and on the cluster, each hypothesis reaches the
   same status, with the same quality and mechanism gates passing or failing for the
   same reasons, over the same runs;
2. the verdict files the cluster wrote are what a local analysis writes from the
   cluster's measurements: equal, but for the last bits of floating-point numbers
   (polars sums in an order that depends on its thread count, hence on the CPUs a job
   may use: one for an analysis job on the cluster, all of them locally).
"""

from __future__ import annotations

import csv
import importlib
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.slurm import (
    CLUSTER_ARGS,
    SlurmJob,
    profile_for_node,
    run_snakemake,
    submitted_job_ids,
)
from tests.conftest import copy_workflow
from tests.workflow.smk import SMALL, SmkResult, wait_no_orphans, write_config

pytestmark = pytest.mark.slurm

POINTS = 6
VERDICTS = ("H0", "H2B", "H3")


def components_missing() -> str | None:
    """The real point needs the simulator, load generator, telemetry and analysis."""
    needed = {
        "spark_harness.sim": "run_server",
        "spark_harness.loadgen": "run_load",
        "spark_harness.telemetry.window": "collect",
        "spark_harness.analysis": "summarize",
    }
    for module, name in needed.items():
        try:
            getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return f"{module}.{name}"
    return None


def decision(verdict_file: Path) -> dict[str, Any]:
    """What a verdict decides, without the measured numbers behind it."""
    v = json.loads(verdict_file.read_text())
    gates = {name: (g["passed"], sorted(g["reasons"])) for name, g in v["gates"].items()}
    # The simulator's clock gate says how busy the host was during each run, not where
    # Snakemake ran it: set aside, with the status it decided when it failed.
    busy = gates.pop("sim_clock", (None, []))[0] is False
    return {
        "status": "host too busy" if busy else v["status"],
        "gates": gates,
        "runs": sorted((r["run_id"], r["outcome"], r["used"]) for r in v["runs"]),
    }


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats to 1e-9 relative (the thread-count-dependent last bits)."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), where
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def read_table(path: Path) -> list[list[Any]]:
    """A CSV with every cell that parses as a number as a float."""

    def cell(text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            return text

    with path.open(newline="") as fh:
        return [[cell(c) for c in row] for row in csv.reader(fh)]


@pytest.fixture(scope="module")
def plan(slurm_cluster: int, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    missing = components_missing()
    if missing:
        pytest.skip(f"the real point needs {missing}, not on this branch yet")
    tmp = tmp_path_factory.mktemp("plan")
    local = copy_workflow(tmp / "local")
    write_config(local, SMALL)
    done = run_snakemake(local, "--cores", "1", "H_all")
    assert done.returncode == 0, done.stdout[-4000:]

    cluster = copy_workflow(tmp / "slurm")
    write_config(cluster, SMALL)
    profile = profile_for_node(tmp / "profile", slurm_cluster)
    done = run_snakemake(cluster, "--workflow-profile", str(profile), *CLUSTER_ARGS, "H_all")
    assert done.returncode == 0, done.stdout[-6000:]
    cluster_log = done.stdout

    # the cluster's measurements analysed again, locally: everything after the raw data
    # goes, and only the analysis rules may run (the raw data count as given)
    again = tmp / "reanalysis"
    shutil.copytree(cluster, again, symlinks=True)
    for d in ("ingest", "summary", "figures"):
        shutil.rmtree(again / "results" / d)
    analysis = ("ingest", "u_work", "summary", *(f"figures_{h}" for h in SMALL["hypotheses"]))
    done = run_snakemake(again, "H_all", "--cores", "1", "--allowed-rules", *analysis)
    assert done.returncode == 0, done.stdout[-4000:]
    return {
        "local": local,
        "cluster": cluster,
        "log": cluster_log,
        "again": done.stdout,
        "reanalysis": again,
        "cpus": slurm_cluster,
    }


def test_cluster_reaches_the_local_verdicts(plan):
    for hyp in VERDICTS:
        rel = Path("results/summary") / hyp / "verdict.json"
        cluster, local = decision(plan["cluster"] / rel), decision(plan["local"] / rel)
        if "host too busy" in (cluster["status"], local["status"]):
            cluster.pop("status"), local.pop("status")
        assert cluster == local, hyp


def test_cluster_verdict_files_are_what_a_local_analysis_writes(plan):
    counts = SmkResult(0, plan["again"]).job_counts()
    assert "loadgen" not in counts, f"the re-analysis measured again: {counts}"
    assert counts.get("summary") == len(VERDICTS)
    for hyp in VERDICTS:
        summary = Path("results/summary") / hyp
        cluster, local = plan["cluster"] / summary, plan["reanalysis"] / summary
        verdict = json.loads((cluster / "verdict.json").read_text())
        assert_same(verdict, json.loads((local / "verdict.json").read_text()), hyp)
        tables = sorted(p.name for p in cluster.glob("*.csv"))
        assert tables == sorted(p.name for p in local.glob("*.csv"))
        for name in tables:
            assert_same(read_table(cluster / name), read_table(local / name), name)


def test_every_point_was_its_own_exclusive_job(plan):
    jobs = submitted_job_ids(plan["log"])
    groups = [j for j, what in jobs.items() if what == "group"]
    assert len(groups) == POINTS
    for j in groups:
        job = SlurmJob.show(j)
        assert job["OverSubscribe"] == "NO"
        assert int(job["NumCPUs"]) == plan["cpus"]
    for run in (plan["cluster"] / "results" / "raw").glob("*/*/*/r*/run.json"):
        assert json.loads(run.read_text())["outcome"] in {"ok", "marked"}, run


def test_no_process_outlives_the_cluster_run(plan):
    assert wait_no_orphans(plan["cluster"]) == []
