"""H6: the knee (or, without a load axis, p99 at the fixed load) against tier capacity,
one line per eviction policy, with the hit ratios below."""

from __future__ import annotations

import polars as pl
from matplotlib.lines import Line2D

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

TABLE = figure_table("knee_vs_capacity")
WHAT = "Knee vs KV tier capacity per eviction policy, and hit ratios, Stack B"
#: Sideways nudge between policies, in doublings of capacity.
DODGE = 0.06
CAPACITY_LABEL = "swept KV tier capacity, sum of the swept *_blocks settings (blocks)"


def knee_vs_capacity(summary: Summary) -> Drawn:
    table = summary.table(TABLE)
    if table is None or table.height == 0:
        return panels.placeholder(summary, WHAT)
    summary.require(
        table, TABLE, ["capacity", "policy", "ttft_p99_ms", "hit_ratio", "g3_hit_share", "knee"]
    )
    table = table.sort("policy", "capacity")
    knees = table["knee"].drop_nulls().len() > 0
    colour = style.stack_colour("B")
    fig, (top, bottom) = style.new_figure(2, height=6.2)
    handles = []
    policies = table["policy"].unique(maintain_order=True).to_list()
    for policy, sub in table.group_by("policy", maintain_order=True):
        name = str(policy[0])
        line, marker = style.POLICY_STYLES.get(name, ("-.", "D"))
        # policies often coincide: nudge each sideways (log2 axis) so none hides another
        shift = 2 ** (DODGE * (policies.index(name) - (len(policies) - 1) / 2))
        per_config = sub.group_by("capacity", maintain_order=True).agg(
            pl.col("knee").first(), pl.col("hit_ratio", "g3_hit_share").mean()
        )
        x = per_config["capacity"].to_numpy() * shift
        if knees:
            top.plot(x, per_config["knee"], line, marker=marker, color=colour)
        else:  # one load: one row per configuration
            y = sub["ttft_p99_ms"].to_numpy()
            err = [y - sub["ttft_p99_ci_lo"].to_numpy(), sub["ttft_p99_ci_hi"].to_numpy() - y]
            top.errorbar(x, y, yerr=err, fmt=line, marker=marker, color=colour, capsize=3)
        bottom.plot(x, per_config["hit_ratio"], line, marker=marker, color=colour)
        bottom.plot(
            x, per_config["g3_hit_share"], line, marker=marker, color=style.TIER_COLOURS["g3"]
        )
        handles.append(
            Line2D([], [], color="black", linestyle=line, marker=marker, label=f"policy {name}")
        )
    if knees:
        top.set_ylabel("knee position (load axis value)")
    else:
        top.set_ylabel("TTFT p99 at the fixed load (ms)")
        style.note(
            top, "no load axis in the sweep: a shifted knee shows as lower p99 here", "lower left"
        )
    panels.criterion_title(
        top, summary.verdict, "policy_lowers_p99" if not knees else "policy_shifts_knee"
    )
    capacities = sorted(table["capacity"].unique().to_list())
    for ax in (top, bottom):
        panels.log2_axis(ax, capacities)
    bottom.set_ylabel("share")
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel(CAPACITY_LABEL)
    top.legend(handles=handles, loc="upper right")
    bottom.legend(
        handles=[
            Line2D([], [], color=colour, label="hit ratio (reused from any tier)"),
            Line2D([], [], color=style.TIER_COLOURS["g3"], label="G3 share of reused tokens"),
        ],
        loc="center right",
    )
    return panels.finish(fig, summary, WHAT), table
