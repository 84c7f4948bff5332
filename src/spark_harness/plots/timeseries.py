"""The per-point time series: what happened during one run, on one time axis.

Four panels share the time axis (seconds from the start of the run's idle baseline),
with the run's phases shaded: TTFT of every request at the moment it was sent (errors
as crosses), KV tier activity (blocks/s onboarded and offloaded per tier, G1 usage),
device reads (MiB/s, read await) and CPU iowait. Where a source was not recorded the
panel says so instead of drawing zeros.

A point's panel shows its first usable repetition; a point whose every attempt failed
shows its first failed attempt (nothing measured is hidden).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.typing import LineStyleType

from spark_harness.plots import style
from spark_harness.plots.data import Ingested
from spark_harness.plots.panels import Drawn
from spark_harness.plots.verdicts import Verdict

WHAT = "Time series of one run: TTFT per request, KV tier activity, device reads, iowait"
MIB = 1024.0  # kB/s -> MiB/s
#: KV tier counters drawn as rates: (delta column, label, tier colour, line style).
KV_SERIES: list[tuple[str, str, str, LineStyleType]] = [
    ("kv_onboard_blocks_g2_delta", "onboard G2→G1", "g2", "-"),
    ("kv_onboard_blocks_g3_delta", "onboard G3→G1", "g3", "-"),
    ("kv_offload_blocks_g1_g2_delta", "offload G1→G2", "g2", "--"),
    ("kv_offload_blocks_g2_g3_delta", "offload G2→G3", "g3", "--"),
    ("kv_offload_blocks_g1_g3_delta", "offload G1→G3", "g3", ":"),
]
#: Fixed layout (fractions of the figure): room for the four-line title and twin axes.
MARGINS = {"left": 0.09, "right": 0.91, "top": 0.855, "bottom": 0.065, "hspace": 0.32}
PHASE_SHADES = {
    "idle": "#F2F2F2",
    "warmup": "#FAF3E0",
    "load": "#FFFFFF",
    "cooldown": "#F2F2F2",
    "populate": "#EAF4FB",
    "thrash": "#FAF3E0",
    "replay": "#FFFFFF",
}


def timeseries_name(stack: str, point: str) -> str:
    """The figure stem of a point's time series (under results/figures/{hyp}/)."""
    return f"timeseries/{stack}_{point}"


def pick_run(points: pl.DataFrame, point: str) -> dict[str, Any] | None:
    """The run a point's panel shows: first usable repetition, else first failed attempt."""
    rows = points.filter(pl.col("point") == point).sort("excluded", "rep", "attempt")
    return rows.row(0, named=True) if rows.height else None


def draw_point(ingested: Ingested, stack: str, point: str, verdict: Verdict) -> Drawn:
    """The time-series figure of one (stack, point) and the long table it plotted."""
    run = pick_run(ingested.points(stack), point)
    fig, axes = style.new_figure(4, height=8.4, margins=MARGINS)
    series: list[pl.DataFrame] = []
    if run is None:
        style.empty_panel(axes[0], f"no run of {stack}/{point} was ingested")
        for ax in axes[1:]:
            ax.set_visible(False)
    else:
        requests = ingested.run(stack, "requests.parquet", run["run_id"])
        telemetry = ingested.run(stack, "telemetry.parquet", run["run_id"]).sort("t_ns")
        phases = _phases(run, requests, telemetry)
        first: Any = telemetry["t_ns"].min()  # epoch ns: an int, never through a float
        t0 = min([v[0] for v in phases.values()] or [int(first or 0)])
        for ax in axes:
            _shade_phases(ax, phases, t0)
        _label_phases(axes[0], phases, t0)
        series += [
            _ttft(axes[0], requests, t0, stack),
            _kv(axes[1], telemetry, t0),
            _device(axes[2], telemetry, t0),
            _iowait(axes[3], telemetry, t0),
        ]
        axes[-1].set_xlabel("time since the start of the run's idle baseline (s)")
    what = f"{WHAT}\nStack {stack}, point {point}" + _which(run)
    title = verdict.figure_title(what)
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    table = pl.concat(series, how="diagonal_relaxed") if series else _empty_table()
    return fig, table


def _phases(
    run: dict[str, Any], requests: pl.DataFrame, telemetry: pl.DataFrame
) -> dict[str, list[int]]:
    """The run's phase windows; a phase a failure cut short ends at the last evidence."""
    phases = {k: v for k, v in json.loads(run["phases_json"] or "{}").items() if v and v[0]}
    evidence: list[Any] = [  # epoch ns: ints, never through a float
        frame[col].max()
        for frame, col in ((telemetry, "t_ns"), (requests, "done_ns"), (requests, "sent_ns"))
        if col in frame.columns and frame.height
    ]
    last = max([int(t) for t in evidence if t is not None], default=None)
    windows = {}
    for k, (start, end) in phases.items():
        stop = end if end is not None else last
        if stop is not None:
            windows[k if end is not None else f"{k} (cut short)"] = [start, stop]
    return windows


def _which(run: dict[str, Any] | None) -> str:
    if run is None:
        return ""
    text = f", repetition {run['rep']}"
    if run["excluded"]:
        text += f" — failed attempt, excluded: {run['exclude_reason']}"
    return text


def _empty_table() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "panel": pl.String,
            "series": pl.String,
            "unit": pl.String,
            "t_s": pl.Float64,
            "value": pl.Float64,
        }
    )


def _long(panel: str, series: str, unit: str, t_s: np.ndarray, value: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame(
        {"panel": panel, "series": series, "unit": unit, "t_s": t_s, "value": value},
        schema={
            "panel": pl.String,
            "series": pl.String,
            "unit": pl.String,
            "t_s": pl.Float64,
            "value": pl.Float64,
        },
    )


def _seconds(t_ns: pl.Series, t0: int) -> np.ndarray:
    return ((t_ns - t0) / 1e9).cast(pl.Float64).to_numpy()


def _shade_phases(ax: Axes, phases: dict[str, list[int]], t0: int) -> None:
    for name, (start, end) in phases.items():
        ax.axvspan(
            (start - t0) / 1e9,
            (end - t0) / 1e9,
            color=PHASE_SHADES.get(name.split(" ")[0], "#F7F7F7"),
            zorder=0,
            lw=0,
        )


def _label_phases(ax: Axes, phases: dict[str, list[int]], t0: int) -> None:
    """Name each phase inside the top panel; alternate heights so short phases stay legible."""
    for i, (name, (start, _)) in enumerate(sorted(phases.items(), key=lambda kv: kv[1][0])):
        x = (start - t0) / 1e9
        ax.axvline(x, color=style.GREY, linewidth=0.6, zorder=1)
        ax.annotate(
            name,
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2 - 9 * (i % 3)),
            textcoords="offset points",
            va="top",
            fontsize=7,
            color=style.GREY,
        )


def _ttft(ax: Axes, requests: pl.DataFrame, t0: int, stack: str) -> pl.DataFrame:
    if requests.height == 0:
        style.empty_panel(ax, "no requests recorded")
        return _empty_table()
    ok = requests.filter(pl.col("ok") & pl.col("ttft_ms").is_not_null())
    bad = requests.filter(~pl.col("ok"))
    colour = style.stack_colour(stack)
    t_ok, ttft = _seconds(ok["sent_ns"], t0), ok["ttft_ms"].to_numpy()
    ax.scatter(t_ok, ttft, s=6, color=colour, alpha=0.7, linewidths=0, zorder=3)
    t_bad = _seconds(bad["sent_ns"], t0)
    if len(t_bad):
        ax.scatter(
            t_bad,
            np.zeros(len(t_bad)),
            marker="x",
            s=18,
            color="black",
            zorder=4,
            label=f"{len(t_bad)} errors",
        )
        ax.legend(loc="upper right")
    ax.set_ylabel("TTFT (ms)")
    ax.set_title(f"TTFT per request, at its send time (Stack {stack})", loc="left", fontsize=8)
    return pl.concat(
        [
            _long("ttft", "ttft_ms", "ms", t_ok, ttft),
            _long("ttft", "error", "count", t_bad, np.ones(len(t_bad))),
        ]
    )


def _rate(telemetry: pl.DataFrame, column: str) -> np.ndarray:
    rate = telemetry[column] / telemetry["dt_s"]
    return rate.cast(pl.Float64).fill_null(np.nan).to_numpy()


def _kv(ax: Axes, telemetry: pl.DataFrame, t0: int) -> pl.DataFrame:
    ax.set_title("KV tier activity", loc="left", fontsize=8)
    present = [
        s for s in KV_SERIES if s[0] in telemetry.columns and telemetry[s[0]].drop_nulls().len()
    ]
    has_usage = (
        "kv_g1_usage" in telemetry.columns and telemetry["kv_g1_usage"].drop_nulls().len() > 0
    )
    if not present and not has_usage:
        style.empty_panel(ax, "no KV tier telemetry recorded (the server exposes none)")
        return _empty_table()
    t = _seconds(telemetry["t_ns"], t0)
    out = []
    handles = []
    for column, label, tier, line in present:
        rate = _rate(telemetry, column)
        if not np.nansum(rate):
            continue  # a tier this stack never used: keep the panel readable
        ax.plot(t, rate, line, color=style.TIER_COLOURS[tier], linewidth=1.2)
        handles.append(Line2D([], [], color=style.TIER_COLOURS[tier], linestyle=line, label=label))
        out.append(_long("kv", column.removesuffix("_delta"), "blocks/s", t, rate))
    ax.set_ylabel("blocks/s")
    ax.set_ylim(bottom=0)
    if not handles:
        style.note(ax, "no blocks moved between tiers in this run")
    if has_usage:
        usage = telemetry["kv_g1_usage"].cast(pl.Float64).fill_null(np.nan).to_numpy() * 100
        twin = ax.twinx()
        twin.plot(t, usage, color="black", linewidth=0.9, alpha=0.7)
        twin.set_ylabel("G1 usage (%)")
        twin.set_ylim(0, 105)
        twin.grid(False)
        handles.append(
            Line2D([], [], color="black", alpha=0.7, linewidth=0.9, label="G1 usage (right)")
        )
        out.append(_long("kv", "kv_g1_usage", "%", t, usage))
    ax.legend(handles=handles, loc="upper left", ncols=3)
    return pl.concat(out) if out else _empty_table()


def _device(ax: Axes, telemetry: pl.DataFrame, t0: int) -> pl.DataFrame:
    ax.set_title("Block device reads (watched devices)", loc="left", fontsize=8)
    if "io_rkb_s" not in telemetry.columns or telemetry["io_rkb_s"].drop_nulls().len() == 0:
        style.empty_panel(ax, "no block-device counters recorded")
        return _empty_table()
    t = _seconds(telemetry["t_ns"], t0)
    reads = telemetry["io_rkb_s"].cast(pl.Float64).fill_null(np.nan).to_numpy() / MIB
    ax.plot(t, reads, color=style.TIER_COLOURS["g3"], linewidth=1.2)
    ax.set_ylabel("reads (MiB/s)")
    ax.set_ylim(bottom=0)
    out = [_long("device", "read_mib_s", "MiB/s", t, reads)]
    handles = [Line2D([], [], color=style.TIER_COLOURS["g3"], label="reads (left)")]
    if "io_r_await_ms" in telemetry.columns:
        wait = telemetry["io_r_await_ms"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        twin = ax.twinx()
        twin.plot(t, wait, color="black", linestyle="--", linewidth=0.9)
        twin.set_ylabel("read await (ms)")
        twin.set_ylim(
            bottom=0, top=max(1.0, float(np.nanmax(wait)) * 1.1) if np.isfinite(wait).any() else 1.0
        )
        twin.grid(False)
        handles.append(
            Line2D([], [], color="black", linestyle="--", linewidth=0.9, label="read await (right)")
        )
        out.append(_long("device", "read_await_ms", "ms", t, wait))
    ax.legend(handles=handles, loc="upper left", ncols=2)
    return pl.concat(out)


def _iowait(ax: Axes, telemetry: pl.DataFrame, t0: int) -> pl.DataFrame:
    ax.set_title("CPU iowait", loc="left", fontsize=8)
    if (
        "cpu_iowait_pct" not in telemetry.columns
        or telemetry["cpu_iowait_pct"].drop_nulls().len() == 0
    ):
        style.empty_panel(ax, "no CPU counters recorded")
        return _empty_table()
    t = _seconds(telemetry["t_ns"], t0)
    iowait = telemetry["cpu_iowait_pct"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    ax.plot(t, iowait, color="black", linewidth=1.2)
    ax.set_ylabel("iowait (% of CPUs)")
    top = float(np.nanmax(iowait)) if np.isfinite(iowait).any() else 1.0
    ax.set_ylim(0, max(1.0, math.ceil(top * 1.2)))
    return _long("iowait", "cpu_iowait_pct", "%", t, iowait)
