"""docs/ARCHITECTURE.md "How to add a hypothesis", followed literally with a toy one.

One module (a registry entry, an evaluator, a figure function) and one entry point make
H10 a hypothesis of the workflow: real Snakemake on a one-point plan gives its target,
its verdict, its figure and its row in the verdict table, with no file of the
repository edited (the test's copy of it is compared before and after).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import textwrap
from pathlib import Path

import pytest

from tests.conftest import copy_workflow
from tests.workflow.smk import SMALL, snakemake, write_config

pytestmark = pytest.mark.workflow

#: Step 1 of the how-to: the module with the entry, the evaluator and the figure code.
TOY_MODULE = textwrap.dedent(
    '''
    """H10 (toy): every run's TTFT p99 is above zero."""

    import polars as pl

    from spark_harness.analysis.evidence import Context, verdict
    from spark_harness.analysis.verdict import Criterion, Verdict
    from spark_harness.plots import style
    from spark_harness.plots.data import Summary
    from spark_harness.plots.panels import Drawn, finish
    from spark_harness.registry import Figure, Hypothesis
    from spark_harness.verdict_contract import figure_table

    TABLE = figure_table("ttft_per_run")


    def evaluate(ctx: Context) -> Verdict:
        used = ctx.used(hyp=ctx.hyp)
        p99 = used["ttft_p99"]
        c = Criterion.positive(
            "ttft_p99_positive", "mean TTFT p99 per run", p99.mean(), (p99.min(), p99.max()),
            source="toy", unit="ms",
        )
        ctx.write_table(TABLE, used.select("hyp", "stack", "point", "rep", "ttft_p99"))
        return verdict(ctx, [c], ctx.gates(used), used)


    def ttft_per_run(summary: Summary) -> Drawn:
        table = summary.table(TABLE)
        fig, (ax,) = style.new_figure(1)
        ax.plot(table["rep"], table["ttft_p99"], "o", color=style.stack_colour("A"))
        return finish(fig, summary, "TTFT p99 per run"), table


    HYPOTHESES = [
        Hypothesis(
            "H10",
            "Every run's TTFT p99 is above zero",
            ("A",),
            "toy_hyp:evaluate",
            (Figure("ttft_per_run", "toy_hyp:ttft_per_run"),),
        )
    ]
    '''
)
#: Step 2: the entry point (what `[project.entry-points."spark_harness.hypotheses"]` in a
#: plugin's pyproject.toml installs), here as the installed metadata itself.
ENTRY_POINTS = "[spark_harness.hypotheses]\ntoy = toy_hyp\n"


def install_plugin(site: Path) -> None:
    site.mkdir()
    (site / "toy_hyp.py").write_text(TOY_MODULE)
    info = site / "toy_hyp-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-hyp\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def digest(root: Path) -> dict[str, str]:
    """Content hash of every file of the repository copy (results excluded)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.relative_to(root).parts[0] not in ("results", ".snakemake")
        and "__pycache__" not in p.parts
    }


def test_a_toy_hypothesis_gets_target_verdict_figure_and_table_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    install_plugin(site)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    root = copy_workflow(tmp_path / "repo")
    # Step 3: the plan names the hypothesis (the plan is the run's input, not code)
    plan = copy.deepcopy(SMALL)
    plan["hypotheses"] = {
        "H10": {
            "stacks": ["A"],
            "sweep": [{"key": "load.users", "role": "concurrency", "name": "users", "values": [1]}],
        }
    }
    write_config(root, plan)
    before = digest(root)

    dry = snakemake(root, "-n", "H10")
    assert dry.returncode == 0, dry.out[-3000:]
    assert "figures_H10" in dry.job_counts()

    run = snakemake(root, "H_all")
    assert run.returncode == 0, run.out[-4000:]
    verdict = json.loads((root / "results/summary/H10/verdict.json").read_text())
    assert verdict["hypothesis"] == "H10"
    # one repetition on a loaded machine: the status is whatever the gates say
    status = verdict["status"]
    assert verdict["criteria"][0]["name"] == "ttft_p99_positive"
    assert verdict["criteria"][0]["value"] > 0
    png = root / "results/figures/H10/ttft_per_run.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with (root / "results/summary/verdicts.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["hypothesis"], r["status"]) for r in rows] == [("H10", status)]
    assert f"| H10 | {status} | ttft_p99_positive = " in run.out  # printed at the end
    assert digest(root) == before  # no file of the repository edited


def test_an_unknown_hypothesis_fails_at_parse_naming_the_known_ones(tmp_path: Path) -> None:
    root = copy_workflow(tmp_path / "repo")
    plan = copy.deepcopy(SMALL)
    plan["hypotheses"] = {"H10": plan["hypotheses"]["H0"]}
    write_config(root, plan)
    out = snakemake(root, "-n", "H_all")
    assert out.returncode != 0
    assert "hypotheses: H10 not in the v3 registry (known: H0, H1, H2A" in out.out
