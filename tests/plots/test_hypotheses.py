"""Every evidence figure, drawn from summaries with planted effects: the figure shows the
planted effect where the verdict found it, the title states the verdict, the CSV holds
what was drawn, and missing or malformed summaries give a clear answer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from spark_harness.plots import style
from spark_harness.plots.data import Summary
from spark_harness.plots.hypotheses import FIGURES
from spark_harness.plots.verdicts import PlotError
from spark_harness.registry import BUILTIN
from spark_harness_testkit.synthetic import World

FIGURE_NAMES = {h.id: h.figure_names for h in BUILTIN}

MIB = 1024**2
ALL = [(h, n) for h, names in FIGURE_NAMES.items() for n in names]
ANALYTICAL = ("H3", "H7", "H8A", "H8B")


def draw(summary: Summary, name: str) -> tuple[Figure, pl.DataFrame]:
    spec = next(s for s in FIGURES[summary.hyp] if s.name == name)
    with style.styled():
        return spec.draw(summary)


def title(fig: Figure) -> str:
    return fig.get_suptitle()


def marks(ax) -> list[tuple[float, str]]:
    """Vertical marks (U_work, knees): x and colour of every dash-dotted vertical line."""
    out = []
    for line in ax.get_lines():
        x = np.asarray(line.get_xdata(), dtype=float)
        if line.get_linestyle() == "-." and len(x) == 2 and x[0] == x[1]:
            out.append((float(x[0]), line.get_color()))
    return out


def slope_of(line: Line2D) -> float:
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    return float((y[-1] - y[0]) / (x[-1] - x[0]))


def test_the_registry_names_exactly_the_tables_each_evaluator_writes(default_results):
    """The fig_*.csv names of the registry and of the analysis are one set."""
    for h in BUILTIN:
        written = set(default_results.summary(h.id).verdict.tables) - {"summary.csv"}
        assert written == set(h.tables), h.id


@pytest.mark.parametrize(("hyp", "name"), ALL)
def test_every_figure_has_verdict_title_labelled_axes_and_its_data(default_results, hyp, name):
    summary = default_results.summary(hyp)
    fig, table = draw(summary, name)
    lines = title(fig).splitlines()
    assert lines[0].startswith(f"{hyp}: ")
    assert any(f"Verdict: {summary.verdict.status}" in line for line in lines)
    assert table.height > 0
    drawn = [ax for ax in fig.axes if ax.has_data()]
    assert drawn
    for ax in drawn:
        assert ax.get_ylabel(), f"{hyp}/{name}: a panel without a y label"
    bottoms = {id(ax) for ax in drawn if ax.get_subplotspec().is_last_row()}
    assert all(ax.get_xlabel() for ax in drawn if id(ax) in bottoms)


def test_h0_marks_u_work_and_the_knee_where_they_were_planted(default_results, results_of):
    fig, table = draw(default_results.summary("H0"), "latency_vs_concurrency")
    top = fig.axes[0]
    assert sorted(marks(top)) == sorted([(4.0, style.stack_colour(s)) for s in ("A", "B")])
    knees = [c for c in top.collections if isinstance(c, PathCollection) and c.get_offsets().size]
    assert {float(c.get_offsets()[0][0]) for c in knees} == {8.0}
    assert table.filter(pl.col("is_u_work"))["users"].to_list() == [4, 4]
    # a knee planted one step later moves the marks with it
    sweep = [
        {
            "key": "load.users",
            "role": "concurrency",
            "name": "users",
            "values": [1, 2, 4, 8, 16, 32],
        }
    ]
    later = results_of({"H0": {"sweep": sweep}}, World(knee_users=16))
    fig, _ = draw(later.summary("H0"), "latency_vs_concurrency")
    assert {x for x, _ in marks(fig.axes[0])} == {8.0}
    # no confirmed knee in the sweep: U_work is its largest step, no knee is drawn
    none = results_of({"H0": {}}, World(knee_users=16))
    fig, table = draw(none.summary("H0"), "latency_vs_concurrency")
    assert {x for x, _ in marks(fig.axes[0])} == {16.0}
    assert not table["is_knee"].any()
    assert "Verdict: inconclusive" in title(fig)


def test_h2b_marks_the_storage_knee_only_where_there_is_one(default_results, results_of):
    fig, _ = draw(default_results.summary("H2B"), "p99_vs_context")
    assert {x for ax in fig.axes for x, _ in marks(ax)} == {1024.0}
    hyps = {"H0": {}, "H2B": {}}
    later = results_of(hyps, World(storage_knee_ctx=2048))
    fig, _ = draw(later.summary("H2B"), "p99_vs_context")
    assert {x for ax in fig.axes for x, _ in marks(ax)} == {2048.0}
    none = results_of(hyps, World(knee_share=0.3))
    fig, _ = draw(none.summary("H2B"), "p99_vs_context")
    assert marks(fig.axes[0]) == []
    assert any("no storage knee" in t.get_text() for t in fig.axes[0].texts)
    assert "Verdict: not supported" in title(fig)


def test_h2b_tier_shares_stack_to_one_per_context(default_results):
    _, table = draw(default_results.summary("H2B"), "tier_hit_shares")
    total = table.select(pl.sum_horizontal("share_g1", "share_g2", "share_g3", "share_miss"))
    assert np.allclose(total.to_series().to_numpy(), 1.0)


def test_h4b_fit_line_is_the_slope_the_verdict_tests(default_results):
    summary = default_results.summary("H4B")
    fig, _ = draw(summary, "p99_vs_read_await")
    fit = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "--"]
    assert len(fit) == 1
    tested = summary.verdict.criterion("slope_p99_vs_read_await_ms")["value"]
    assert slope_of(fit[0]) == pytest.approx(tested, rel=1e-6)
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"fio: none", "fio: moderate", "fio: heavy"} <= labels


def test_h5_fit_is_the_tested_slope_in_mib(default_results):
    summary = default_results.summary("H5")
    fig, _ = draw(summary, "p99_vs_working_set")
    solid = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == "-"]
    tested = summary.verdict.criterion("slope_p99_vs_working_set")["value"]
    assert slope_of(solid[0]) == pytest.approx(tested * MIB, rel=1e-6)
    assert fig.axes[1].get_xlabel() == "KV working set (MiB)"


def test_h1_cdf_marks_each_p99_from_its_table(default_results):
    fig, table = draw(default_results.summary("H1"), "ttft_cold_vs_warm")
    p99 = dict(table.filter(pl.col("q") == 0.99).select("cache", "ttft_ms").iter_rows())
    assert p99["cold"] > p99["warm"]  # planted: cold adapters lengthen the tail
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert f"p99 cold {p99['cold']:.1f} ms" in texts and f"p99 warm {p99['warm']:.1f} ms" in texts


def test_h6_draws_each_policy_and_the_capacity_effect(default_results):
    fig, table = draw(default_results.summary("H6"), "knee_vs_capacity")
    assert len(fig.axes[0].containers) == 3  # one errorbar series per policy
    p99 = table.group_by("capacity").agg(pl.col("ttft_p99_ms").mean()).sort("capacity")
    assert p99["ttft_p99_ms"][0] > p99["ttft_p99_ms"][-1]  # planted: capacity helps


def test_h8b_draws_runs_without_nvme_hollow(default_results):
    fig, table = draw(default_results.summary("H8B"), "iowait_vs_p99")
    hollow = [
        c
        for c in fig.axes[0].collections
        if isinstance(c, PathCollection) and len(c.get_facecolors()) == 0
    ]
    assert sum(len(c.get_offsets()) for c in hollow) == table.filter(~pl.col("nvme_engaged")).height
    assert table.filter(~pl.col("nvme_engaged")).height > 0


def test_h9_bars_are_the_mode_means_with_cis(default_results):
    fig, table = draw(default_results.summary("H9"), "replay_ttft_by_mode")
    means = table.filter(pl.col("kind") == "mode_mean")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx(means["ttft_ms"].to_list())
    by_mode = dict(means.select("mode", "ttft_ms").iter_rows())
    assert by_mode["B2"] < by_mode["B0"]  # planted: reloading beats recomputing
    reps = default_results.plan.config["defaults"]["repetitions"]
    assert (
        table.filter(pl.col("kind") == "pair").height == reps * 3
    )  # a pair per repetition x 3 modes


def test_h7_predicted_and_observed_reads_are_in_gib(default_results):
    _, table = draw(default_results.summary("H7"), "predicted_vs_observed_reads")
    ratio = table["observed_gib"].sum() / table["predicted_gib"].sum()
    assert 0.5 < ratio < 2  # planted: device reads = G3 onboards x block bytes


# ---------------------------------------------------------------- bad or missing input
def _copy(default_results, hyp: str, dest: Path) -> Path:
    shutil.copytree(default_results.summary_dir(hyp), dest)
    return dest


def test_a_table_the_analysis_did_not_write_gives_a_figure_that_says_why(default_results, tmp_path):
    d = _copy(default_results, "H0", tmp_path / "H0")
    verdict = json.loads((d / "verdict.json").read_text())
    verdict.update(status="invalid", reasons=["no_usable_runs"], tables=[])
    (d / "verdict.json").write_text(json.dumps(verdict))
    (d / "fig_latency_vs_concurrency.csv").unlink()
    fig, table = draw(Summary(d), "latency_vs_concurrency")
    assert "Verdict: invalid (no_usable_runs)" in title(fig)
    assert any("no data to draw (no_usable_runs)" in t.get_text() for t in fig.axes[0].texts)
    assert table["note"].to_list() == ["no data to draw (no_usable_runs)"]


def test_a_listed_table_that_is_missing_is_an_error_naming_it(default_results, tmp_path):
    d = _copy(default_results, "H4B", tmp_path / "H4B")
    (d / "fig_p99_vs_read_await.csv").unlink()
    with pytest.raises(PlotError, match=r"fig_p99_vs_read_await.csv: listed in verdict.json"):
        draw(Summary(d), "p99_vs_read_await")


def test_a_table_without_a_plotted_column_is_an_error_naming_it(default_results, tmp_path):
    d = _copy(default_results, "H4B", tmp_path / "H4B")
    path = d / "fig_p99_vs_read_await.csv"
    pl.read_csv(path).drop("read_await_ms").write_csv(path)
    with pytest.raises(
        PlotError, match=r"fig_p99_vs_read_await.csv: missing column\(s\) read_await_ms"
    ):
        draw(Summary(d), "p99_vs_read_await")


def test_h0_marks_a_collapse_point(results_of):
    # a tail 12x the median at 16 users puts p99 over 1 s: docs/PLAN.md's collapse point
    res = results_of({"H0": {}}, World(base_ms=200.0, tail_high=6.0))
    summary = res.summary("H0")
    assert summary.verdict.stacks["A"]["collapse"]["reason"] == "p99_over_1000ms"
    fig, _ = draw(summary, "latency_vs_concurrency")
    texts = [t.get_text() for t in fig.axes[0].texts]
    at = summary.verdict.stacks["A"]["collapse"]["users"]
    assert "collapse A: p99_over_1000ms" in texts
    dotted = [ln for ln in fig.axes[0].get_lines() if ln.get_linestyle() == ":"]
    assert any(list(ln.get_xdata()) == [at, at] for ln in dotted)


def test_analytical_figures_over_other_sources_draw_and_say_what_is_missing(results_of):
    """H3, H7, H8 over H0 (the workflow tests' small plan): every figure still draws, and
    one whose axis the sources do not sweep says so (a valid plan must not fail)."""
    res = results_of({"H0": {}, **{h: {"analytical": {"from": ["H0"]}} for h in ANALYTICAL}})
    for hyp in ANALYTICAL:
        for name in FIGURE_NAMES[hyp]:
            fig, table = draw(res.summary(hyp), name)
            assert table.height > 0 and title(fig).startswith(hyp)
    _, table = draw(res.summary("H3"), "p99_vs_context")
    assert table["note"].to_list() == [
        "no data to draw: the sources do not sweep workload.context_tokens"
    ]
