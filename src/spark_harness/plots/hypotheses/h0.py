"""H0: TTFT percentiles against concurrency, U_work and the knee marked per stack."""

from __future__ import annotations

import polars as pl

from spark_harness.analysis import thresholds as T
from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary, number
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

TABLE = figure_table("latency_vs_concurrency")
WHAT = "TTFT p50/p95/p99 vs concurrency (closed loop); U_work, knee and collapse per stack"


def latency_vs_concurrency(summary: Summary) -> Drawn:
    table = summary.table(TABLE)
    if table is None or table.height == 0:
        return panels.placeholder(summary, WHAT)
    summary.require(table, TABLE, ["stack", "users", "p50_ms", "p99_ms", "p99_over_p50"])
    table = table.sort("stack", "users")
    stacks = table["stack"].unique(maintain_order=True).to_list()
    last = table["users"].max()
    fig, (top, bottom) = style.new_figure(2, height=6.2)
    for level, stack in enumerate(stacks):
        sub = table.filter(pl.col("stack") == stack)
        colour = style.stack_colour(stack)
        marker = style.stack_marker(stack)
        panels.percentile_curves(top, sub, "users", colour, prefix="", marker=marker)
        bottom.plot(sub["users"], sub["p99_over_p50"], "-", color=colour, marker=marker, ms=3.5)
        u_work = sub["u_work"].drop_nulls()
        if u_work.len():
            x = float(u_work[0])
            panels.mark_x(top, x, colour, f"U_work {stack} = {x:g}", level, left=x == last)
        collapse = (summary.verdict.stacks.get(stack) or {}).get("collapse")
        if collapse:  # docs/PLAN.md collapse point: p99 > 1 s, errors > 1 % or throughput falls
            x = float(collapse["users"])
            label = f"collapse {stack}: {collapse['reason']}"
            panels.mark_x(top, x, colour, label, len(stacks) + level, x == last, ":")
        knee = sub.filter(pl.col("is_knee").fill_null(False))
        if knee.height:
            top.scatter(knee["users"], knee["p99_ms"], marker="X", s=90, color=colour, zorder=4)
            bottom.scatter(knee["users"], knee["p99_over_p50"], marker="X", s=90, color=colour)
    panels.threshold_line(bottom, T.KNEE_P99_OVER_P50, "knee rule: p99 > 2 × p50 at two steps")
    if (
        number(table["p99_ms"].max()) or 0.0
    ) >= T.COLLAPSE_P99_MS / 2:  # only where the curves come near it
        panels.threshold_line(top, T.COLLAPSE_P99_MS, "collapse: p99 > 1000 ms", "right")
    users = sorted(table["users"].unique().to_list())
    for ax in (top, bottom):
        panels.log2_axis(ax, users)
    top.set_ylabel("TTFT (ms)")
    bottom.set_ylabel("p99 / p50")
    bottom.set_xlabel("concurrency (closed-loop users)")
    panels.legend(
        top,
        stacks,
        panels.QUANTILES,
        extra=[("knee", {"marker": "X", "color": "black", "linestyle": "none", "ms": 8})],
        loc="upper left",
    )
    return panels.finish(fig, summary, WHAT), table
