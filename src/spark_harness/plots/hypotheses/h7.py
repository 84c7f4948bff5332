"""H7: KV telemetry against the device — predicted vs observed NVMe reads, and p99 vs
G3 fetch p95, per run of the source hypotheses (H2B's context sweep, H4B's profiles)."""

from __future__ import annotations

import numpy as np
import polars as pl

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

READS = figure_table("predicted_vs_observed_reads")
FETCH = figure_table("p99_vs_g3_fetch_p95")
WHAT_READS = "Device read bytes per run: predicted from G3 onboards × block bytes vs observed"
WHAT_FETCH = "TTFT p99 per run vs G3 fetch time p95 (server-reported), Stack B"
#: docs/ANALYSIS.md H7_RATIO_BAND: observed / predicted within [0.5, 2].
BAND = (0.5, 2.0)
GIB = 1024**3


def predicted_vs_observed_reads(summary: Summary) -> Drawn:
    table = summary.table(READS)
    if table is None or table.height == 0:
        return panels.placeholder(summary, WHAT_READS)
    summary.require(table, READS, ["hyp", "stack", "predicted_read_bytes", "observed_read_bytes"])
    plotted = table.with_columns(
        predicted_gib=pl.col("predicted_read_bytes") / GIB,
        observed_gib=pl.col("observed_read_bytes") / GIB,
    )
    fig, (ax,) = style.new_figure(1, height=4.8)
    top = float(np.nanmax(plotted.select("predicted_gib", "observed_gib").fill_null(0).to_numpy()))
    xs = np.linspace(0, top * 1.05 or 1.0, 50)
    ax.fill_between(xs, BAND[0] * xs, BAND[1] * xs, color=style.GREY, alpha=0.12, linewidth=0)
    ax.plot(xs, xs, color=style.GREY, linewidth=1.0, label="observed = predicted")
    panels.scatter_runs(
        ax, plotted, "predicted_gib", "observed_gib", marker_by="hyp", markers=style.SOURCE_MARKERS
    )
    panels.criterion_title(ax, summary.verdict, "read_bytes_r2", "R² over runs")
    ax.set_xlim(0, xs[-1])
    ax.set_ylim(0, xs[-1] * 1.2)
    ax.set_xlabel("predicted reads: G3 onboards × block bytes (GiB)")
    ax.set_ylabel("observed device reads above idle (GiB)")
    panels.source_legend(
        ax,
        plotted,
        extra=[("band ×0.5 to ×2 (rule)", {"color": style.GREY, "alpha": 0.3, "linewidth": 6})],
    )
    return panels.finish(fig, summary, WHAT_READS), plotted


def p99_vs_g3_fetch_p95(summary: Summary) -> Drawn:
    table = summary.table(FETCH)
    if table is None or table.height == 0:
        return panels.placeholder(summary, WHAT_FETCH)
    summary.require(table, FETCH, ["hyp", "stack", "g3_fetch_p95_ms", "ttft_p99"])
    fig, (ax,) = style.new_figure(1, height=4.6)
    panels.scatter_runs(
        ax, table, "g3_fetch_p95_ms", "ttft_p99", marker_by="hyp", markers=style.SOURCE_MARKERS
    )
    for stack, sub in table.group_by("stack", maintain_order=True):
        panels.ols_line(
            ax,
            sub["g3_fetch_p95_ms"].cast(pl.Float64).to_numpy(),
            sub["ttft_p99"].cast(pl.Float64).to_numpy(),
            style.stack_colour(str(stack[0])),
        )
    panels.criterion_title(
        ax, summary.verdict, "p99_vs_g3_fetch_p95", "Pearson r(p99, G3 fetch p95)"
    )
    ax.set_xlabel("G3 fetch time p95 per run (ms)")
    ax.set_ylabel("TTFT p99 per run (ms)")
    panels.source_legend(
        ax,
        table,
        extra=[("least-squares fit", {"color": "black", "linestyle": "--", "linewidth": 1.1})],
    )
    return panels.finish(fig, summary, WHAT_FETCH), table
