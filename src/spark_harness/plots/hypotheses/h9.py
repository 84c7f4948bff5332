"""H9: mean replay TTFT per KVBM mode (B0 no offload, B1 host tier, B2 host + disk) with
95 % CIs, and each repetition pair (AB/BA order) drawn across the modes."""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.artist import Artist
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

MODES_TABLE = figure_table("replay_ttft_by_mode")
PAIRS_TABLE = figure_table("replay_pairs")
WHAT = "Mean replay TTFT per mode with 95 % CI; lines: repetition pairs (AB/BA order)"
MODE_LABELS = {"B0": "B0: no offload", "B1": "B1: host tier", "B2": "B2: host + disk"}
ORDER_MARKERS = {"listed": "o", "reversed": "s"}


def replay_ttft_by_mode(summary: Summary) -> Drawn:
    modes = summary.table(MODES_TABLE)
    if modes is None or modes.height == 0:
        return panels.placeholder(summary, WHAT)
    summary.require(modes, MODES_TABLE, ["mode", "stack", "mean_replay_ttft_ms", "ci_lo", "ci_hi"])
    pairs = summary.table(PAIRS_TABLE)
    names = modes["mode"].to_list()
    pos = np.arange(len(names))
    fig, (ax,) = style.new_figure(1, height=4.6)
    mean = modes["mean_replay_ttft_ms"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    lo = mean - modes["ci_lo"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    hi = modes["ci_hi"].cast(pl.Float64).fill_null(np.nan).to_numpy() - mean
    for i, (mode, stack) in enumerate(modes.select("mode", "stack").iter_rows()):
        ax.bar(
            pos[i],
            mean[i],
            0.6,
            color=style.stack_colour(mode),
            hatch=style.STACK_HATCHES.get(mode, ""),
            edgecolor="black",
            linewidth=0.6,
            label=MODE_LABELS.get(mode, mode) + ("" if stack == mode else f" (stack {stack})"),
        )
    ax.errorbar(pos, mean, yerr=[lo, hi], fmt="none", ecolor="black", capsize=5, linewidth=1.2)
    long = [
        {
            "kind": "mode_mean",
            "mode": m,
            "rep": None,
            "order": None,
            "ttft_ms": mean[i],
            "ci_lo": mean[i] - lo[i],
            "ci_hi": mean[i] + hi[i],
        }
        for i, m in enumerate(names)
    ]
    if pairs is not None and pairs.height:
        for rep, order, *values in pairs.select("rep", "order", *names).iter_rows():
            ax.plot(
                pos,
                values,
                "-",
                color=style.GREY,
                linewidth=0.8,
                marker=ORDER_MARKERS.get(order, "D"),
                ms=4,
                zorder=3,
            )
            long += [
                {
                    "kind": "pair",
                    "mode": m,
                    "rep": rep,
                    "order": order,
                    "ttft_ms": v,
                    "ci_lo": None,
                    "ci_hi": None,
                }
                for m, v in zip(names, values, strict=True)
            ]
    panels.criterion_title(ax, summary.verdict, "replay_ttft_b2_minus_b1", "B2 − B1 (evidence)")
    ax.set_xticks(pos, [MODE_LABELS.get(m, m) for m in names])
    ax.set_xlabel("KV offload mode of Stack B")
    ax.set_ylabel("mean TTFT of replayed sessions (ms)")
    handles: list[Artist] = [
        Patch(
            facecolor=style.stack_colour(m),
            hatch=style.STACK_HATCHES.get(m, ""),
            edgecolor="black",
            linewidth=0.6,
            label=MODE_LABELS.get(m, m),
        )
        for m in names
    ]
    handles += [
        Line2D([], [], color=style.GREY, marker=mk, label=f"repetition pair, {o} order")
        for o, mk in ORDER_MARKERS.items()
    ]
    ax.legend(handles=handles, loc="upper right")
    return panels.finish(fig, summary, WHAT), pl.DataFrame(long, infer_schema_length=None)
