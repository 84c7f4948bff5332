"""H5: TTFT p95/p99 and device read IOPS per run against the measured KV working set."""

from __future__ import annotations

import polars as pl

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

TABLE = figure_table("p99_vs_working_set")
WHAT = "TTFT p95/p99 and device read IOPS per run vs KV working set (multi-turn chat), Stack B"
MIB = 1024**2


def working_set_axis(summary: Summary) -> tuple[str, float]:
    """The working set's unit as the verdict measured it: bytes (shown in MiB) or tokens."""
    c = summary.verdict.criterion("slope_p99_vs_working_set") or {}
    if str(c.get("unit", "")).endswith("/tokens"):
        return "KV working set (tokens)", 1.0
    return "KV working set (MiB)", MIB


def p99_vs_working_set(summary: Summary) -> Drawn:
    table = summary.table(TABLE)
    if table is None or table.height == 0:
        return panels.placeholder(summary, WHAT)
    summary.require(table, TABLE, ["stack", "working_set", "ttft_p95", "ttft_p99"])
    label, scale = working_set_axis(summary)
    table = table.sort("stack", "working_set").with_columns(
        working_set_shown=pl.col("working_set") / scale
    )
    fig, (top, bottom) = style.new_figure(2, height=6.2)
    for stack, sub in table.group_by("stack", maintain_order=True):
        colour = style.stack_colour(str(stack[0]))
        x = sub["working_set_shown"].cast(pl.Float64).to_numpy()
        for q in ("p95", "p99"):
            y = sub[f"ttft_{q}"].cast(pl.Float64).to_numpy()
            top.scatter(x, y, color=colour, marker="o" if q == "p99" else "v", s=24, zorder=3)
            panels.ols_line(top, x, y, colour, linestyle=style.PERCENTILE_STYLES[q])
        if "read_iops" in sub.columns:
            bottom.scatter(
                x, sub["read_iops"], color=colour, marker=style.stack_marker(str(stack[0])), s=24
            )
    if "n_sessions" in table.columns:
        firsts = table.group_by("n_sessions", maintain_order=True).agg(pl.all().first())
        for n, x, y in firsts.select("n_sessions", "working_set_shown", "ttft_p99").iter_rows():
            top.annotate(
                f"{n} sessions",
                (x, y),
                xytext=(0, 8),
                textcoords="offset points",
                ha="center",
                fontsize=7.5,
            )
    panels.criterion_title(top, summary.verdict, "slope_p95_vs_working_set", "p95 slope")
    panels.criterion_title(bottom, summary.verdict, "slope_iops_vs_working_set", "IOPS slope")
    top.set_ylabel("TTFT per run (ms)")
    bottom.set_ylabel("device reads (IOPS)")
    bottom.set_xlabel(label)
    top.margins(y=0.15)
    panels.legend(
        top,
        table["stack"].unique(maintain_order=True).to_list(),
        extra=[
            ("p99 (fit: solid)", {"color": "black", "marker": "o", "linestyle": "-"}),
            ("p95 (fit: dashed)", {"color": "black", "marker": "v", "linestyle": "--"}),
        ],
        lines=False,
        loc="upper left",
    )
    return panels.finish(fig, summary, WHAT), table
