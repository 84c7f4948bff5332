"""Drawing steps several figures share: percentile curves, per-run scatters, fits, marks.

Each helper draws onto a given panel in the harness style (:mod:`.style`) and plots
exactly the rows it is given, so the CSV written beside a figure is the data drawn.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.typing import LegendLocType, LineStyleType

from spark_harness.plots import style
from spark_harness.plots.data import Summary
from spark_harness.plots.verdicts import Verdict

#: What a figure function returns: the figure and the table it plotted.
Drawn = tuple[Figure, pl.DataFrame]
QUANTILES = ("p50", "p95", "p99")


@dataclass(frozen=True)
class FigureSpec:
    """One evidence figure of a hypothesis."""

    name: str  # file stem under results/figures/{hyp}/
    draw: Callable[[Summary], Drawn]


def finish(fig: Figure, summary: Summary, what: str) -> Figure:
    """Title every figure the same way: claim, what is shown, verdict with its numbers,
    and the points that could not be drawn because none of their runs was usable."""
    title = summary.verdict.figure_title(what)
    lost = summary.failed_points()
    if lost:
        title += "\n" + textwrap.shorten("Not drawn, no usable run: " + "; ".join(lost), 150)
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    return fig


def placeholder(summary: Summary, what: str, why: str = "") -> Drawn:
    """A figure without data (no table written, no such sweep axis): it says why."""
    why = why or summary.why_empty()
    fig, axes = style.new_figure(1)
    style.empty_panel(axes[0], why)
    axes[0].set_xticks([])
    finish(fig, summary, what)
    return fig, pl.DataFrame({"note": [why]})


def percentile_curves(
    ax: Axes,
    frame: pl.DataFrame,
    x: str,
    colour: str,
    *,
    prefix: str = "ttft_",
    quantiles: Sequence[str] = QUANTILES,
    band: str | None = "p99",
    marker: str = "o",
) -> None:
    """TTFT percentiles against ``x``: one line style per percentile, CI band on the tail.

    Columns: ``{prefix}{q}_ms`` and, for the band, ``{prefix}{q}_ci_lo/_ci_hi``.
    """
    frame = frame.sort(x)
    xs = frame[x].to_numpy()
    for q in quantiles:
        col = f"{prefix}{q}_ms"
        if col not in frame.columns:
            continue
        ax.plot(
            xs,
            frame[col].to_numpy(),
            style.PERCENTILE_STYLES[q],
            color=colour,
            marker=marker,
            ms=3.5,
        )
        lo, hi = f"{prefix}{q}_ci_lo", f"{prefix}{q}_ci_hi"
        if q == band and lo in frame.columns and hi in frame.columns:
            ax.fill_between(
                xs,
                frame[lo].cast(pl.Float64).to_numpy(),
                frame[hi].cast(pl.Float64).to_numpy(),
                color=colour,
                alpha=0.18,
                linewidth=0,
            )


def criterion_title(
    ax: Axes, verdict: Verdict, name: str, label: str = "", width: int = 110
) -> None:
    """Title a panel with the criterion it is evidence for: its numbers and its status."""
    c = verdict.criterion(name)
    if c is not None:
        text = f"{label or name}: {verdict.measured(c)} — {c.get('status')}"
        ax.set_title(textwrap.fill(text, width), loc="left", fontsize=8)


def legend(
    ax: Axes,
    stacks: Sequence[str] = (),
    quantiles: Sequence[str] = (),
    extra: Sequence[tuple[str, dict]] = (),
    loc: LegendLocType = "best",
    lines: bool = True,
) -> None:
    """One legend: stacks by colour, percentiles by line style, then any extra entries.

    ``lines=False`` shows the stacks as markers only (per-run scatters)."""
    handles = [
        Line2D(
            [],
            [],
            color=style.stack_colour(s),
            marker=style.stack_marker(s),
            linestyle="-" if lines else "none",
            label=f"Stack {s}",
        )
        for s in stacks
    ]
    handles += [
        Line2D([], [], color="black", linestyle=style.PERCENTILE_STYLES[q], label=f"TTFT {q}")
        for q in quantiles
    ]
    handles += [Line2D([], [], label=label, **kw) for label, kw in extra]
    if quantiles and "p99" in quantiles:
        handles.append(Line2D([], [], color="black", alpha=0.25, linewidth=6, label="p99 95 % CI"))
    if handles:
        ax.legend(handles=handles, loc=loc)


def source_legend(ax: Axes, table: pl.DataFrame, extra: Sequence[tuple[str, dict]] = ()) -> None:
    """Legend of a per-run scatter over source hypotheses: stacks by colour, sources by
    marker (the analytical hypotheses H3, H7, H8 pool the runs of two sources)."""
    sources = [
        (
            f"runs of {h}",
            {
                "color": "black",
                "marker": style.SOURCE_MARKERS.get(h, "o"),
                "linestyle": "none",
                "fillstyle": "none",
            },
        )
        for h in table["hyp"].unique(maintain_order=True).to_list()
    ]
    stacks = table["stack"].unique(maintain_order=True).to_list()
    legend(ax, stacks, lines=False, extra=[*sources, *extra], loc="upper left")


def scatter_runs(
    ax: Axes,
    frame: pl.DataFrame,
    x: str,
    y: str,
    *,
    marker_by: str | None = None,
    markers: dict[str, str] | None = None,
    hollow: pl.Series | None = None,
) -> None:
    """One point per run, coloured by stack; shaped by ``marker_by`` (profile, source)."""
    frame = frame.with_columns(_hollow=hollow if hollow is not None else pl.lit(False))
    order = (
        frame[marker_by].cast(pl.String).unique(maintain_order=True).to_list() if marker_by else []
    )
    keys = ["stack"] + ([marker_by] if marker_by else [])
    for group, sub in frame.group_by(keys, maintain_order=True):
        stack, colour = str(group[0]), style.stack_colour(str(group[0]))
        if marker_by:
            key = str(group[1])
            marker = (markers or {}).get(key) or style.MARKERS[
                order.index(key) % len(style.MARKERS)
            ]
        else:
            marker = style.stack_marker(stack)
        for hollow_part, part in sub.group_by("_hollow", maintain_order=True):
            ax.scatter(
                part[x].to_numpy(),
                part[y].to_numpy(),
                marker=marker,
                s=28,
                facecolors="none" if hollow_part[0] else colour,
                edgecolors=colour,
                linewidths=1.2,
                zorder=3,
            )


def ols_line(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    colour: str,
    label: str = "",
    linestyle: LineStyleType = "--",
) -> None:
    """The least-squares line over the observed x range (what a slope criterion fits)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    xs = np.linspace(x[ok].min(), x[ok].max(), 20)
    ax.plot(
        xs, slope * xs + intercept, color=colour, linestyle=linestyle, linewidth=1.1, label=label
    )


def mark_x(
    ax: Axes,
    x: float,
    colour: str,
    text: str,
    level: int = 0,
    left: bool = False,
    linestyle: str = "-.",
) -> None:
    """A vertical mark with its label (U_work, a knee), stacked by ``level`` to not overlap;
    ``left`` puts the label left of the line (a mark at the right end of the axis)."""
    ax.axvline(x, color=colour, linestyle=linestyle, linewidth=1.0, alpha=0.9)
    ax.annotate(
        text,
        xy=(x, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(-3 if left else 3, -10 - 11 * level),
        textcoords="offset points",
        fontsize=7.5,
        color=colour,
        ha="right" if left else "left",
        va="top",
    )


def threshold_line(ax: Axes, y: float, text: str, side: str = "left") -> None:
    """A horizontal rule threshold (p99/p50 = 2, share = 50 %, ...), labelled on one side."""
    ax.axhline(y, color=style.GREY, linestyle=(0, (4, 3)), linewidth=1.0)
    ax.annotate(
        text,
        xy=(0.0 if side == "left" else 1.0, y),
        xycoords=("axes fraction", "data"),
        xytext=(3 if side == "left" else -3, 2),
        textcoords="offset points",
        ha=side,
        fontsize=7.5,
        color=style.GREY,
        va="bottom",
        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 0.5},
    )


def log2_axis(ax: Axes, values: Sequence[float]) -> None:
    """Sweeps that double (users, context, capacity): a log2 axis ticked at the values."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(values), [f"{v:g}" for v in values])
    ax.minorticks_off()
