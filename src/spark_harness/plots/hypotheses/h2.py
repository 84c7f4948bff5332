"""H2A and H2B: the context sweep at U_work, without (A) and with (B) a tiered KV cache.

H2A shows TTFT against context beside the device reads against their idle baseline
(the claim: no KV storage traffic). H2B shows TTFT with the storage knee marked, the G3
fetch share of p95 TTFT against the knee threshold and the device read await; a second
figure splits prompt tokens by the tier they came from.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from spark_harness.analysis import thresholds as T
from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

CURVE = figure_table("p99_vs_context")
SHARES = figure_table("tier_hit_shares")
CTX = "workload.context_tokens"
CTX_LABEL = "context (prompt tokens)"
WHAT_A = "TTFT vs context at U_work, and device reads vs their idle baseline, Stack A"
WHAT_B = "TTFT vs context at U_work with the storage knee; G3 fetch share; read await, Stack B"
WHAT_SHARES = "Where prompt tokens came from, per context: G1, G2, G3 or computed, Stack B"


def _curve(summary: Summary) -> pl.DataFrame | str:
    """The TTFT-vs-context table, or why there is none."""
    table = summary.along(CURVE, CTX)
    if isinstance(table, str):
        return table
    summary.require(table, CURVE, ["stack", "ttft_p99_ms"])
    return table.sort("stack", CTX)


def knee_context(summary: Summary) -> float | None:
    """The storage knee's context, as the H2B verdict located it."""
    c = summary.verdict.criterion("storage_knee")
    point = (c or {}).get("details", {}).get("knee_point")
    table = summary.table(CURVE)
    if point is None or table is None or CTX not in table.columns:
        return None
    row = table.filter(pl.col("point") == point)
    return float(row[CTX][0]) if row.height else None


def p99_vs_context_a(summary: Summary) -> Drawn:
    table = _curve(summary)
    if isinstance(table, str):
        return panels.placeholder(summary, WHAT_A, table)
    fig, (top, bottom) = style.new_figure(2, height=6.0)
    for stack, sub in table.group_by("stack", maintain_order=True):
        colour = style.stack_colour(str(stack[0]))
        panels.percentile_curves(top, sub, CTX, colour, marker=style.stack_marker(str(stack[0])))
        xs = sub[CTX].to_numpy()
        idle = sub["idle_read_kbps"].to_numpy()
        bottom.plot(xs, sub["read_kbps"], "-", color=colour, marker="o", label="load window")
        bottom.plot(xs, idle, ":", color=style.GREY, marker=".", label="idle baseline")
        limit = idle + T.H2A_READS_OVER_IDLE * np.maximum(idle, T.IDLE_READ_FLOOR_KBPS)
        bottom.plot(xs, limit, "--", color=style.GREY, linewidth=1.0, label="idle + 10 % (rule)")
    values = sorted(table[CTX].unique().to_list())
    for ax in (top, bottom):
        panels.log2_axis(ax, values)
    top.set_ylabel("TTFT (ms)")
    bottom.set_ylabel("device reads (kB/s)")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel(CTX_LABEL)
    panels.legend(top, table["stack"].unique(maintain_order=True).to_list(), panels.QUANTILES)
    bottom.legend(loc="upper left")
    return panels.finish(fig, summary, WHAT_A), table


def p99_vs_context_b(summary: Summary) -> Drawn:
    table = _curve(summary)
    if isinstance(table, str):
        return panels.placeholder(summary, WHAT_B, table)
    fig, (top, mid, bottom) = style.new_figure(3, height=7.6)
    knee = knee_context(summary)
    for stack, sub in table.group_by("stack", maintain_order=True):
        colour = style.stack_colour(str(stack[0]))
        marker = style.stack_marker(str(stack[0]))
        panels.percentile_curves(top, sub, CTX, colour, marker=marker)
        share = sub["g3_fetch_share_p95"].cast(pl.Float64).fill_null(np.nan)
        mid.plot(sub[CTX], share, "-", color=colour, marker=marker)
        bottom.plot(sub[CTX], sub["read_await_ms"], "-", color=colour, marker=marker)
        if knee is not None:
            left = knee == table[CTX].max()  # a knee at the last context: label inside
            for ax in (top, mid, bottom):
                label = f"storage knee: {knee:g} tokens" if ax is top else ""
                panels.mark_x(ax, knee, colour, label, left=left)
    panels.threshold_line(mid, T.STORAGE_KNEE_FETCH_SHARE, "knee: G3 fetch ≥ 50 % of p95 TTFT")
    if knee is None:
        style.note(top, "no storage knee in the sweep")
    values = sorted(table[CTX].unique().to_list())
    for ax in (top, mid, bottom):
        panels.log2_axis(ax, values)
    top.set_ylabel("TTFT (ms)")
    mid.set_ylabel("p95 G3 fetch / p95 TTFT")
    mid.set_ylim(0, 1)
    bottom.set_ylabel("device read await (ms)")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel(CTX_LABEL)
    panels.legend(top, table["stack"].unique(maintain_order=True).to_list(), panels.QUANTILES)
    return panels.finish(fig, summary, WHAT_B), table


def tier_hit_shares(summary: Summary) -> Drawn:
    table = summary.along(SHARES, CTX)
    if isinstance(table, str):
        return panels.placeholder(summary, WHAT_SHARES, table)
    tiers = ["g1", "g2", "g3", "miss"]
    summary.require(table, SHARES, ["g3_hit_share", *[f"share_{t}" for t in tiers]])
    fig, (ax,) = style.new_figure(1, height=4.4)
    pos = np.arange(table.height)
    bottom = np.zeros(table.height)
    for tier in tiers:
        vals = table[f"share_{tier}"].cast(pl.Float64).fill_null(0).to_numpy()
        ax.bar(
            pos,
            vals,
            0.6,
            bottom=bottom,
            color=style.TIER_COLOURS[tier],
            label=style.TIER_LABELS[tier],
        )
        bottom += vals
    hit = table["g3_hit_share"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    ax.plot(pos, hit, "-", color="black", marker="D", ms=4, label="G3 share of reused tokens")
    panels.threshold_line(ax, T.H2B_G3_HIT_SHARE, "rule: G3 hit share ≥ 20 % at the knee")
    knee = knee_context(summary)
    if knee is not None and knee in table[CTX].to_list():
        i = table[CTX].to_list().index(knee)
        ax.annotate(
            "storage knee",
            (pos[i], 1.0),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            fontsize=7.5,
        )
    ax.set_xticks(pos, [f"{v:g}" for v in table[CTX].to_list()])
    ax.set_xlabel(CTX_LABEL)
    ax.set_ylabel("share of prompt tokens")
    ax.set_ylim(0, 1.08)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return panels.finish(fig, summary, WHAT_SHARES), table
