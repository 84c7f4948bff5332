"""The per-point time series: every request and sample of the run it shows, on one time
axis, with absent sources and failed attempts said, never drawn as zeros or hidden."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from matplotlib.collections import PathCollection

from spark_harness.analysis.thresholds import MIN_REPETITIONS
from spark_harness.ingest import ingest
from spark_harness.plots import style
from spark_harness.plots.data import Ingested
from spark_harness.plots.timeseries import draw_point
from spark_harness.plots.verdicts import PlotError, Verdict
from spark_harness.verdict_contract import SCHEMA_VERSION
from spark_harness_testkit.synthetic import RunSpec, World, write_run

VERDICT = Verdict.from_dict(
    {
        "schema_version": SCHEMA_VERSION,
        "hypothesis": "H0",
        "title": "t",
        "status": "supported",
        "reasons": [],
        "criteria": [],
    }
)


def panel(ingested: Ingested, stack: str, point: str, verdict: Verdict = VERDICT):
    with style.styled():
        return draw_point(ingested, stack, point, verdict)


def texts(ax) -> str:
    return " ".join(t.get_text() for t in ax.texts)


def test_panel_draws_every_request_and_sample_of_the_first_repetition(default_results):
    ing = default_results.ingested("H2B")
    fig, table = panel(ing, "B", "ctx-1024", default_results.summary("H2B").verdict)
    requests = pl.read_parquet(ing.dirs["B"] / "requests.parquet").filter(
        pl.col("run_id") == "H2B/B/ctx-1024/r0"
    )
    ttft = table.filter(pl.col("series") == "ttft_ms")
    assert ttft.height == requests.filter(pl.col("ok")).height
    assert sorted(ttft["value"].to_list()) == sorted(requests.filter(pl.col("ok"))["ttft_ms"])
    dots = fig.axes[0].collections[0]
    assert isinstance(dots, PathCollection) and len(dots.get_offsets()) == ttft.height
    assert "repetition 0" in fig.get_suptitle() and "Verdict: supported" in fig.get_suptitle()
    # G3 onboards at the planted rate during the load window, none while idle
    g3 = table.filter(pl.col("series") == "kv_onboard_blocks_g3")
    assert g3["unit"].unique().to_list() == ["blocks/s"]
    assert g3.filter(pl.col("t_s") < 0.9)["value"].drop_nans().drop_nulls().max() == 0
    assert g3["value"].drop_nans().max() > 1000
    # phases shaded on every panel, named once on the top one
    assert {"idle", "warmup", "load", "cooldown"} <= set(texts(fig.axes[0]).split())
    series = set(table["series"])
    assert {"read_mib_s", "read_await_ms", "cpu_iowait_pct", "kv_g1_usage"} <= series


def test_absent_kv_telemetry_is_said_not_drawn_as_zero(results_of):
    res = results_of({"H0": {}}, World(kv_telemetry=False))
    fig, table = panel(res.ingested("H0"), "A", "users-1")
    assert "no KV tier telemetry recorded" in texts(fig.axes[1])
    assert not table.filter(pl.col("panel") == "kv").height
    assert table.filter(pl.col("panel") == "device").height  # the other sources still drawn


def test_failed_points_show_their_attempt_and_retried_points_their_completed_run(results_of):
    lost = {("H0", "A", "users-1", rep) for rep in range(MIN_REPETITIONS)}  # every repetition
    res = results_of(
        {"H0": {}}, World(fail=frozenset(lost), retry=frozenset({("H0", "A", "users-2", 0)}))
    )
    fig, table = panel(res.ingested("H0"), "A", "users-1")
    assert "failed attempt, excluded: run_failed:server_died" in fig.get_suptitle()
    assert table.filter(pl.col("series") == "ttft_ms").height > 0  # its requests are shown
    fig, _ = panel(res.ingested("H0"), "A", "users-2")
    assert "repetition 0" in fig.get_suptitle() and "failed" not in fig.get_suptitle()


def test_errors_are_crosses_at_their_send_time(tmp_path):
    rs = RunSpec("H0", "A", "users-4", 0, n_requests=200, error_share=0.1, seed=3)
    ingest([write_run(tmp_path / "results", rs)], tmp_path / "ingest")
    fig, table = panel(Ingested({"A": tmp_path / "ingest"}), "A", "users-4")
    requests = pl.read_parquet(tmp_path / "ingest" / "requests.parquet")
    n_bad = requests.filter(~pl.col("ok")).height
    assert n_bad > 0
    assert table.filter(pl.col("series") == "error").height == n_bad
    crosses = fig.axes[0].collections[1]
    assert len(crosses.get_offsets()) == n_bad
    assert np.all(crosses.get_offsets()[:, 1] == 0)
    assert f"{n_bad} errors" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_a_point_never_ingested_says_so(default_results):
    fig, table = panel(default_results.ingested("H0"), "A", "users-999")
    assert "no run of A/users-999 was ingested" in texts(fig.axes[0])
    assert table.height == 0


def test_missing_ingested_tables_name_the_file(tmp_path):
    with pytest.raises(PlotError, match=r"points\.parquet: ingested table missing"):
        panel(Ingested({"A": tmp_path}), "A", "users-1")
    with pytest.raises(PlotError, match="no ingested tables for stack 'B'"):
        panel(Ingested({"A": tmp_path}), "B", "users-1")
