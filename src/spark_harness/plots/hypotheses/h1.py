"""H1: TTFT distributions of cold and warm LoRA adapters on Stack A (CDF, p99 marked)."""

from __future__ import annotations

import polars as pl

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn
from spark_harness.plots.verdicts import fmt
from spark_harness.verdict_contract import figure_table

TABLE = figure_table("ttft_cold_vs_warm")
WHAT = "TTFT distribution (CDF, pooled repetitions) with cold vs warm LoRA adapters, Stack A"
CACHE_STYLES = {"warm": "-", "cold": "--"}


def ttft_cold_vs_warm(summary: Summary) -> Drawn:
    table = summary.table(TABLE)
    if table is None or table.height == 0:
        return panels.placeholder(summary, WHAT)
    summary.require(table, TABLE, ["cache", "q", "ttft_ms"])
    colour = style.stack_colour("A")
    fig, (ax,) = style.new_figure(1, height=4.2)
    for cache, sub in table.sort("cache", "q").group_by("cache", maintain_order=True):
        name = str(cache[0])
        ax.plot(
            sub["ttft_ms"],
            sub["q"],
            CACHE_STYLES.get(name, ":"),
            color=colour if name == "cold" else style.tint(colour, 0.35),
            label=f"{name} adapters",
            drawstyle="steps-post",
        )
        p99 = sub.filter(pl.col("q") == 0.99)["ttft_ms"]
        if p99.len():
            ax.plot(p99[0], 0.99, "o", color=colour, ms=5)
            ax.annotate(
                f"p99 {name} {fmt(p99[0], 'ms')}",
                (p99[0], 0.99),
                xytext=(5, -12),
                textcoords="offset points",
                ha="left",
                fontsize=7.5,
                color=colour,
            )
    panels.threshold_line(ax, 0.99, "p99")
    excess = summary.verdict.criterion("cold_bytes_read")
    if excess is not None:
        style.note(ax, f"cold − warm bytes read: {summary.verdict.measured(excess)}", "lower right")
    ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("share of requests ≤ TTFT")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="center right")
    return panels.finish(fig, summary, WHAT), table
