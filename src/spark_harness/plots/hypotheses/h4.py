"""H4A and H4B: TTFT p99 per run against device read await under fio contention profiles.

The profiles (none / moderate / heavy) are the marker shapes and are written beside
their runs. H4A shows the ±10 % band around p99 without contention (the claim: p99
barely moves); H4B shows the least-squares line whose slope the verdict tests.
"""

from __future__ import annotations

import polars as pl
from matplotlib.axes import Axes

from spark_harness.analysis import thresholds as T
from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary, number
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

TABLE = figure_table("p99_vs_read_await")
PROFILE = "qos.profile"
BASELINE = "none"
WHAT_A = "TTFT p99 per run vs device read await under fio profiles, Stack A"
WHAT_B = "TTFT p99 per run vs device read await under fio profiles, Stack B"
X_LABELS = {
    "read_await_ms": "device read await in the load window (ms)",
    "g3_fetch_p95_ms": "G3 fetch time p95 (ms)",
}


def _runs(summary: Summary) -> pl.DataFrame | None:
    table = summary.table(TABLE)
    if table is None or table.height == 0:
        return None
    summary.require(table, TABLE, ["stack", PROFILE, "read_await_ms", "ttft_p99"])
    return table


def _label_profiles(ax: Axes, table: pl.DataFrame, x: str) -> None:
    """Write each profile's name beside its runs (the fio profile annotation)."""
    means = table.group_by(PROFILE, maintain_order=True).agg(
        pl.col(x).mean(), pl.col("ttft_p99").max()
    )
    for profile, mx, my in means.iter_rows():
        if mx is None or my is None:
            continue
        ax.annotate(
            f"fio: {profile}",
            (mx, my),
            xytext=(0, 8),
            textcoords="offset points",
            ha="center",
            fontsize=7.5,
        )


def _scatter(ax: Axes, table: pl.DataFrame, x: str) -> None:
    panels.scatter_runs(ax, table, x, "ttft_p99", marker_by=PROFILE, markers=style.PROFILE_MARKERS)
    _label_profiles(ax, table, x)
    ax.set_xlabel(X_LABELS[x])
    ax.set_ylabel("TTFT p99 per run (ms)")
    ax.margins(x=0.1, y=0.15)


def p99_vs_read_await_a(summary: Summary) -> Drawn:
    table = _runs(summary)
    if table is None:
        return panels.placeholder(summary, WHAT_A)
    fig, (ax,) = style.new_figure(1, height=4.4)
    _scatter(ax, table, "read_await_ms")
    base = number(table.filter(pl.col(PROFILE) == BASELINE)["ttft_p99"].mean())
    if base is not None:
        ax.axhspan(
            base * (1 - T.H4A_P99_CHANGE),
            base * (1 + T.H4A_P99_CHANGE),
            color=style.GREY,
            alpha=0.12,
        )
        panels.threshold_line(ax, base, "p99 without contention; band: ±10 % (rule)", "right")
    panels.criterion_title(ax, summary.verdict, "read_await_rises", "await rise, heaviest − none")
    panels.legend(
        ax, table["stack"].unique(maintain_order=True).to_list(), lines=False, loc="lower right"
    )
    return panels.finish(fig, summary, WHAT_A), table


def p99_vs_read_await_b(summary: Summary) -> Drawn:
    table = _runs(summary)
    if table is None:
        return panels.placeholder(summary, WHAT_B)
    fetch = summary.verdict.criterion("slope_p99_vs_g3_fetch_p95_ms") is not None
    x = "g3_fetch_p95_ms" if fetch else "read_await_ms"
    fig, (ax,) = style.new_figure(1, height=4.4)
    _scatter(ax, table, x)
    for stack, sub in table.group_by("stack", maintain_order=True):
        panels.ols_line(
            ax,
            sub[x].cast(pl.Float64).to_numpy(),
            sub["ttft_p99"].cast(pl.Float64).to_numpy(),
            style.stack_colour(str(stack[0])),
            "least-squares fit over runs",
        )
    panels.legend(
        ax,
        table["stack"].unique(maintain_order=True).to_list(),
        lines=False,
        extra=[("least-squares fit", {"color": "black", "linestyle": "--", "linewidth": 1.1})],
        loc="lower right",
    )
    return panels.finish(fig, summary, WHAT_B), table
