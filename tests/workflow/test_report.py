"""The figures and the Snakemake report, built by real Snakemake on a small plan covering
every hypothesis.

The measurements are synthetic runs in the exact data-contract format (planted effects,
``spark_harness_testkit.synthetic``), laid out as finished loadgen jobs would leave them: Snakemake
sees every point measured and runs the rest of the DAG itself (ingest, summaries,
figures), then the report. So the report is checked against every hypothesis's verdict
without minutes of simulated load, and the staleness rules of the figure jobs are
checked on the real workflow.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from spark_harness import layout, plots, registry, verdict_table
from spark_harness.analysis.u_work import write_u_work
from spark_harness.ingest import ingest
from spark_harness.plan import Plan
from spark_harness.plots.verdicts import Verdict
from spark_harness_testkit.synthetic import World, write_plan
from tests.conftest import REPO, copy_workflow
from tests.workflow.smk import snakemake, write_config

pytestmark = pytest.mark.workflow

#: The repository's plan with the smallest sweeps that still locate every planted effect.
SWEEPS = {
    "H0": [{"key": "load.users", "role": "concurrency", "name": "users", "values": [2, 4, 8, 16]}],
    "H2A": [
        {"key": "workload.context_tokens", "role": "context", "name": "ctx", "values": [256, 1024]}
    ],
    "H2B": [
        {"key": "workload.context_tokens", "role": "context", "name": "ctx", "values": [256, 1024]}
    ],
    "H4A": [
        {"key": "qos.profile", "role": "qos_profile", "name": "qos", "values": ["none", "heavy"]}
    ],
    "H4B": [
        {"key": "qos.profile", "role": "qos_profile", "name": "qos", "values": ["none", "heavy"]}
    ],
    "H5": [
        {"key": "workload.sessions", "role": "working_set", "name": "sessions", "values": [4, 64]}
    ],
    "H6": [
        {
            "key": "server.sim.g2_blocks",
            "role": "tier_capacity",
            "name": "g2",
            "values": [128, 512],
        },
        {
            "key": "server.sim.eviction",
            "role": "eviction_policy",
            "name": "policy",
            "values": ["lru", "fifo"],
        },
    ],
}


def small_config() -> dict:
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    for hyp, sweep in SWEEPS.items():
        cfg["hypotheses"][hyp]["sweep"] = sweep
    return cfg


def measured_as_snakemake_would_leave_it(root: Path, plan: Plan) -> None:
    """Synthetic runs of every point, plus H0's ingest and U_work (which H2A/H2B's points
    read), with modification times in DAG order so every measurement is up to date."""
    results = root / plan.results
    world = World(n_requests=150)
    h0 = write_plan(plan, results, world, hyps={"H0"})
    for (hyp, stack), dirs in h0.items():
        ingested = layout.path(results, layout.INGEST_DIR, hyp=hyp, stack=stack)
        ingest(dirs, ingested)
        write_u_work(ingested, layout.path(results, layout.U_WORK, stack=stack))
    write_plan(plan, results, world, hyps=set(plan.measured()) - {"H0"})
    stages = [
        "raw/H0/**/*",
        "ingest/H0/**/*",
        "summary/H0/u_work/*",
        *[f"raw/{h}/**/*" for h in plan.measured() if h != "H0"],
    ]
    start = time.time() - 600
    # the workflow's files predate the measurements: a script newer than its outputs
    # reruns them ("code has changed"), and a fresh clone's files carry the clone's time
    for p in root.rglob("*"):
        if results not in (p, *p.parents):
            os.utime(p, (start - 60, start - 60), follow_symlinks=False)
    for i, pattern in enumerate(stages):
        stamp = start + 10 * min(i, 3)
        for p in results.glob(pattern):
            os.utime(p, (stamp, stamp))


def report_data(html: str) -> tuple[dict, dict]:
    """The report's results and categories (JSON embedded in its scripts)."""
    results = json.loads(re.search(r"var results = (\{.*?\});\n", html).group(1))
    categories = json.loads(re.search(r"var categories = (\{.*?\});\n", html).group(1))
    return results, categories


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Plan, object]:
    root = copy_workflow(tmp_path_factory.mktemp("report"))
    write_config(root, small_config())
    plan = Plan(small_config(), base_dir=root)
    measured_as_snakemake_would_leave_it(root, plan)
    run = snakemake(root, "--cores", "2", "H_all")
    assert run.returncode == 0, run.out[-4000:]
    return root, plan, run


def test_h_all_draws_every_figure_from_the_summaries_without_measuring(built):
    root, plan, run = built
    counts = run.job_counts()
    assert not {"loadgen", "server_up", "telemetry_sidecar", "u_work"} & set(counts)
    assert counts["summary"] == len(plan.hypotheses)
    assert {f"figures_{h}" for h in plan.hypotheses} <= set(counts)
    for hyp in plan.hypotheses:
        points = list(dict.fromkeys((r.stack, r.point) for r in plan.runs(hyp)))
        for f in plots.files(hyp, points):
            assert (root / "results" / "figures" / hyp / f).is_file(), f"{hyp}/{f}"


def test_report_has_a_category_per_hypothesis_with_every_figure_and_its_verdict(built):
    root, plan, _ = built
    rep = snakemake(root, "--report", "results/report.html", "H_all")
    assert rep.returncode == 0, rep.out[-4000:]
    html = (root / "results" / "report.html").read_text()
    results, categories = report_data(html)
    assert set(categories) == {*plan.hypotheses, registry.COMPARE}
    for hyp in plan.hypotheses:
        verdict = Verdict.read(root / "results" / "summary" / hyp / "verdict.json")
        evidence = [Path(p).stem for p in categories[hyp]["evidence"]]
        assert sorted(evidence) == sorted(plots.figure_names(hyp))
        points = {(r.stack, r.point) for r in plan.runs(hyp)}
        series = categories[hyp].get("time series per point", [])
        assert len(series) == len(points)
        for path in [*categories[hyp]["evidence"], *series]:
            entry = results[path]
            assert entry["labels"]["verdict"] == verdict.status
            assert entry["data_uri"].startswith("data:image/png")  # embedded: opens offline
            caption = entry["caption"]
            assert f"<strong>Verdict: {verdict.status}.</strong>" in caption
            assert "system-message" not in caption, caption
            primary = verdict.primary()
            if primary is not None:
                number = verdict.measured(primary).split(" (")[0]
                assert number in caption, (hyp, number)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"https?:", html)


def test_the_report_opens_on_the_verdict_table_and_compares_the_stacks(built):
    root, plan, run = built
    rows = verdict_table.collect(root / "results")
    assert [r.hypothesis for r in rows] == list(plan.hypotheses)
    table = (root / "results" / verdict_table.VERDICTS_MD).read_text()
    assert f"Verdicts at a glance (results/{verdict_table.SUMMARY}):" in run.out
    assert table in run.out  # printed when the run ended, from the verdict files
    rep = snakemake(root, "--report", "results/report.html", "H_all")
    assert rep.returncode == 0, rep.out[-4000:]
    html = (root / "results" / "report.html").read_text()
    front = json.loads(re.search(r"var workflow_desc = (\".*?\");\n", html).group(1))
    assert front.index("Verdicts at a glance") < front.index("How to read the figures")
    for r in rows:
        assert f"<td>{r.hypothesis}</td>" in front and f"<td>{r.status}</td>" in front
    results, categories = report_data(html)
    charts = sorted(Path(p).stem for p in categories[registry.COMPARE]["Other"])
    planned = sorted(c.name for c in registry.comparisons(plan.hypotheses))
    assert charts == planned and "H2_p99_vs_context" in planned
    for path in categories[registry.COMPARE]["Other"]:
        assert results[path]["data_uri"].startswith("data:image/png")


def test_editing_the_plotting_script_reruns_only_the_figures(built):
    root, plan, _ = built
    script = root / "workflow" / "scripts" / "figures.py"
    original, stat = script.read_text(), script.stat()
    try:
        script.write_text(original + "# an edit\n")
        dry = snakemake(root, "-n", "H_all")
    finally:  # Snakemake tracks a script by its mtime: restore both
        script.write_text(original)
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dry.returncode == 0, dry.out[-3000:]
    counts = dry.job_counts()
    assert set(counts) - {"H_all"} == {f"figures_{h}" for h in plan.hypotheses}


def test_figures_target_redraws_a_lost_figure_and_nothing_else(built):
    root, _, _ = built
    (root / "results" / "figures" / "H5" / "p99_vs_working_set.png").unlink()
    dry = snakemake(root, "-n", "figures")
    assert dry.returncode == 0, dry.out[-3000:]
    assert set(dry.job_counts()) - {"figures"} == {"figures_H5"}


def test_the_plots_package_is_an_input_of_every_figure_job(built):
    """An edit of the plotting code (by content: Snakemake compares checksums) reruns the
    figure jobs, as an edit of their script does, and nothing upstream."""
    root, plan, _ = built
    dry = snakemake(root, "-n", "--forcerun", *[f"figures_{h}" for h in plan.hypotheses])
    assert dry.returncode == 0, dry.out[-3000:]
    inputs = re.findall(r"rule figures_\w+:\n    input: (.*)", dry.out)
    assert len(inputs) == len(plan.hypotheses)
    assert all("spark_harness/plots/style.py" in line for line in inputs)
    assert all("spark_harness/plots/hypotheses/h0.py" in line for line in inputs)
