"""``plots.draw``: every file ``plots.files`` promises (what the workflow declares), and
nothing else; the verdict snippet for the report; clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from docutils.core import publish_parts

from spark_harness import plots
from spark_harness.plots.verdicts import PlotError
from spark_harness.verdict_contract import ContractError


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("hyp", ["H2B", "H7"])  # measured (time series) and analytical
def test_draw_writes_exactly_the_declared_files(default_results, tmp_path, hyp):
    points = default_results.points(hyp)
    ingest = {s: default_results.ingest_dir(hyp, s) for s in default_results.plan.stacks_of(hyp)}
    written = plots.draw(hyp, default_results.summary_dir(hyp), tmp_path, ingest, points)
    expected = sorted(plots.files(hyp, points))
    assert sorted(str(p.relative_to(tmp_path)) for p in written) == expected
    assert listing(tmp_path) == expected  # no temporary or stray file left
    assert bool(points) == (hyp == "H2B")
    html = publish_parts((tmp_path / plots.VERDICT_RST).read_text(), writer="html")["body"]
    assert "Verdict: supported." in html and "system-message" not in html


def test_files_names_evidence_figures_time_series_and_the_snippet():
    files = plots.files("H2B", [("B", "ctx-256")])
    assert "p99_vs_context.png" in files and "p99_vs_context.svg" in files
    assert "tier_hit_shares.csv" in files
    assert "timeseries/B_ctx-256.png" in files and "timeseries/B_ctx-256.csv" in files
    assert "timeseries/B_ctx-256.svg" not in files  # thousands of dots: PNG only
    assert files[-1] == plots.VERDICT_RST
    assert plots.figure_names("H42") == []  # unknown: no evidence figures, nothing raised


def test_a_summary_of_another_hypothesis_is_refused(default_results, tmp_path):
    with pytest.raises(PlotError, match=r"verdict\.json is for H0, not H1"):
        plots.draw("H1", default_results.summary_dir("H0"), tmp_path)


def test_a_missing_summary_is_refused_naming_it(tmp_path):
    with pytest.raises(ContractError, match="verdict missing"):
        plots.draw("H0", tmp_path / "nowhere", tmp_path / "out")


def test_report_labels_read_the_verdict(default_results):
    labels = plots.report_labels(
        default_results.summary_dir("H9") / "verdict.json", "time series", "B2", "base"
    )
    assert labels["verdict"] == "supported" and labels["stack"] == "B2"


def test_redrawing_replaces_files_in_place(default_results, tmp_path):
    src = tmp_path / "summary"
    shutil.copytree(default_results.summary_dir("H3"), src)
    first = plots.draw("H3", src, tmp_path / "out")
    before = {p: p.read_bytes() for p in first}
    again = plots.draw("H3", src, tmp_path / "out")
    assert again == first
    assert {p: p.read_bytes() for p in again} == before  # deterministic output
