"""H3: which counters explain p99 — OS memory counters (A) or KV tier counters (B)."""

from __future__ import annotations

import polars as pl

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.hypotheses.h2 import CTX, CTX_LABEL
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

CURVE = figure_table("p99_vs_context")
COUNTERS = figure_table("p99_vs_counters")
WHAT_CONTEXT = "TTFT p99 vs context at U_work: Stack A (H2A) against Stack B (H2B)"
WHAT_COUNTERS = "TTFT p99 per run vs OS memory used (left) and vs G3 onboards (right)"
GIB = 1024**3


def p99_vs_context(summary: Summary) -> Drawn:
    table = summary.along(CURVE, CTX)
    if isinstance(table, str):
        return panels.placeholder(summary, WHAT_CONTEXT, table)
    summary.require(table, CURVE, ["stack", "ttft_p99_ms"])
    table = table.sort("stack", CTX)
    fig, (ax,) = style.new_figure(1, height=4.4)
    stacks = table["stack"].unique(maintain_order=True).to_list()
    for stack in stacks:
        sub = table.filter(pl.col("stack") == stack)
        panels.percentile_curves(
            ax,
            sub,
            CTX,
            style.stack_colour(stack),
            quantiles=["p99"],
            marker=style.stack_marker(stack),
        )
    panels.log2_axis(ax, sorted(table[CTX].unique().to_list()))
    ax.set_xlabel(CTX_LABEL)
    ax.set_ylabel("TTFT p99 (ms)")
    panels.legend(ax, stacks, ["p99"], loc="upper left")
    return panels.finish(fig, summary, WHAT_CONTEXT), table


def p99_vs_counters(summary: Summary) -> Drawn:
    table = summary.table(COUNTERS)
    if table is None or table.height == 0:
        return panels.placeholder(summary, WHAT_COUNTERS)
    summary.require(
        table, COUNTERS, ["stack", "ttft_p99", "os_mem_used_bytes", "g3_onboards_per_request"]
    )
    table = table.sort("stack", "hyp", "point", "rep")
    plotted = table.with_columns(os_mem_used_gib=pl.col("os_mem_used_bytes") / GIB)
    fig, (left, right) = style.new_figure(1, 2, sharex=False, height=4.2)
    panels.scatter_runs(left, plotted, "os_mem_used_gib", "ttft_p99")
    panels.scatter_runs(right, plotted, "g3_onboards_per_request", "ttft_p99")
    v = summary.verdict
    panels.criterion_title(left, v, "os_counters_explain_A", "r(p99, OS memory), A", width=55)
    panels.criterion_title(right, v, "kv_counters_explain_B_better", "r(KV) − r(OS), B", width=55)
    left.set_xlabel("OS memory in use in the window, above the stack's least-used (GiB)")
    right.set_xlabel("G3 onboard blocks per request")
    for ax in (left, right):
        ax.set_ylabel("TTFT p99 per run (ms)")
    panels.legend(left, plotted["stack"].unique(maintain_order=True).to_list(), lines=False)
    return panels.finish(fig, summary, WHAT_COUNTERS), plotted
