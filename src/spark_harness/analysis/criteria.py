"""Building blocks of the rules: values per run or per point with their replicates.

A *quantity* is either a TTFT percentile name (``p50``, ``p95``, ``p99``: the run's
percentile over its analysed window; :data:`TAIL`: the tail the points support) or a
column of the runs table (a telemetry mean, a counter increase); either way one value
per run. Every helper returns the estimate on the data as
measured plus its replicates (the repetition is the unit, :class:`~.stats.Resampler`), so
a derived statistic gets a CI from the same draws as its parts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl

from spark_harness.analysis import stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.evidence import PointStats, Stat
from spark_harness.analysis.runs import QUANTILES
from spark_harness.analysis.verdict import (
    INCONCLUSIVE,
    INF,
    NOT_SUPPORTED,
    Criterion,
    judge,
)

Pair = tuple[np.ndarray, np.ndarray]  # (estimate, replicates)

#: The tail a rule judges: p99 where every run's window holds TAIL_P99_MIN_REQUESTS ok
#: requests, else p95 (docs/PLAN.md, :meth:`~.evidence.PointStats.tail`). Why: the p99 of
#: a demo window's 11-150 requests is its largest one or two; in H6's capacity world its
#: CoV between repetitions was 3-17 % where p95's was 1-6 %, and its gain left the world
#: undecided in 3 of 9 saved runs (CI -22 to +11 % once) where p95 refuted it in all 9.
TAIL = "tail"


def resolve(ps: PointStats, quantity: str) -> str:
    """The percentile :data:`TAIL` stands for in these points; any other name as is."""
    return ps.tail()[0] if quantity == TAIL else quantity


def per_run(ps: PointStats, quantity: str) -> Pair:
    """Per-run values (n_runs,) and per-slot replicates (RESAMPLES, n_runs)."""
    quantity = resolve(ps, quantity)
    if quantity in QUANTILES:
        est = ps.runs[f"ttft_{quantity}"].to_numpy().astype(float)
        return est, ps.slots(quantity)
    est = ps.runs[quantity].cast(pl.Float64).fill_null(math.nan).to_numpy()
    return est, ps.fixed_slots(quantity)


def per_point(ps: PointStats, quantity: str) -> Pair:
    """Per-point means over repetitions (n_points,) and replicates (RESAMPLES, n_points)."""
    quantity = resolve(ps, quantity)
    if quantity in QUANTILES:
        return ps.estimate(f"ttft_{quantity}"), ps.replicates(quantity)
    return ps.estimate(quantity), ps.fixed_replicates(quantity)


def complete(ps: PointStats, *quantities: str) -> bool:
    """Every run has a value for every quantity (missing telemetry is not a zero)."""
    return all(np.all(np.isfinite(per_run(ps, q)[0])) for q in quantities)


def across_runs(
    ps: PointStats, x: str, y: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray | float]
) -> Stat:
    """A statistic of (x, y) over runs, e.g. a slope or a correlation, with its CI: the
    run as the unit (regression t, Fisher z: :data:`~.stats.RUN_INTERVALS`), else the
    statistic of the per-run replicates."""
    (x0, xb), (y0, yb) = per_run(ps, x), per_run(ps, y)
    interval = stats.RUN_INTERVALS.get(fn)
    reps = interval(x0, y0) if interval else np.asarray(fn(xb, yb))
    return Stat.of(float(fn(x0, y0)), reps)


def partial_correlation(ps: PointStats, x: str, y: str, by: str) -> Stat:
    """Pearson r of x and y over runs once each ``by`` group's own level is removed (its
    runs' mean subtracted from x and y): the partial correlation given the group, with
    the Fisher-z interval on N - 3 - (groups - 1) degrees of freedom.

    Why: runs pooled from sources with different workloads (H8 pools two hypotheses)
    carry the sources' own levels; a source with lower p99 and higher iowait would turn
    their pooled correlation negative with no run showing the two move together."""
    groups = ps.runs[by].to_list()
    x0, y0 = (stats.centered_within(per_run(ps, q)[0], groups) for q in (x, y))
    controls = len(set(groups)) - 1
    reps = stats.pearson_replicates(x0, y0, controls=controls)
    return Stat.of(float(stats.pearson(x0, y0)), reps)


def swing(ps: PointStats, x: str, y: str) -> Stat:
    """Change of y across the range of x the design produced, from the OLS slope over
    runs. The range is between the points' means of x: the runs' own extremes add their
    scatter (fio's iowait varies 57-66 % between repetitions of one profile) and would
    stretch the change beyond the design's."""
    x0, y0 = per_run(ps, x)[0], per_run(ps, y)[0]
    xp = per_point(ps, x)[0]
    span = np.nanmax(xp) - np.nanmin(xp) if np.isfinite(xp).any() else math.nan
    return Stat.of(float(stats.slope(x0, y0)) * span, stats.slope_replicates(x0, y0) * span)


def design_points(ps: PointStats, x: str) -> int:
    """How many distinct values of x the design's points have (means over their runs)."""
    xp = per_point(ps, x)[0]
    return len(np.unique(xp[np.isfinite(xp)]))


def relative_swing(ps: PointStats, x: str, y: str) -> Stat:
    """:func:`swing` as a share of y's baseline: y's mean over the repetitions of the
    point with the smallest mean x. None with fewer than two design points: there is no
    range to rise across (a rise of exactly 0 would refute)."""
    xp, yp = per_point(ps, x)[0], per_point(ps, y)[0]
    if design_points(ps, x) < 2:
        return Stat(None, None)
    base0 = float(yp[np.nanargmin(xp)])
    rise = swing(ps, x, y)
    return Stat(
        None if rise.value is None else rise.value / base0,
        None if rise.ci is None else (rise.ci[0] / base0, rise.ci[1] / base0),
    )


def material_slope(
    name: str, ps: PointStats, x: str, y: str, source: str, unit: str, rows: list
) -> Criterion:
    """Does y rise with x? A rise across the design's x range whose CI stays below
    MATERIAL_P99_CHANGE of the baseline (y at the point with the smallest mean x,
    :func:`relative_swing`) is refuted, however precisely positive its slope: a rise
    too small to matter; otherwise a slope whose CI lies above 0 is supported; anything
    else is inconclusive, as is a design of one x value (runs' scatter around one
    point is no slope)."""
    s = across_runs(ps, x, y, stats.slope)
    rel = relative_swing(ps, x, y)
    status, reasons = judge(s.value, s.ci, supported=[(0, math.inf)], refuted=[])
    if design_points(ps, x) < 2:
        status, reasons = INCONCLUSIVE, ["one_design_point"]
    elif rel.ci is not None and rel.ci[1] < T.MATERIAL_P99_CHANGE:
        status, reasons = NOT_SUPPORTED, ["rise_not_material"]
    return Criterion(
        name=name,
        statistic=f"OLS slope of {resolve(ps, y)} on {x} over runs",
        value=s.value,
        ci=s.ci,
        threshold=0.0,
        op=">",
        source=source,
        status=status,
        reasons=[f"{r}:{name}" for r in reasons],
        unit=unit,
        rows=rows,
        details={
            "relative_rise_over_range": rel.value,
            "relative_rise_ci": rel.ci,
            "material_threshold": T.MATERIAL_P99_CHANGE,
            "pearson": across_runs(ps, x, y, stats.pearson).__dict__,
            "spearman": across_runs(ps, x, y, stats.spearman).__dict__,
        },
    )


def difference(ps: PointStats, quantity: str, a: tuple, b: tuple) -> Stat:
    """quantity at point a minus at point b (means over repetitions), with the two-sample
    t CI on the repetitions (:func:`~.stats.two_sample_replicates`)."""
    v = per_run(ps, quantity)[0]
    va, vb = v[ps.members(a)], v[ps.members(b)]
    return Stat.of(va.mean() - vb.mean(), stats.two_sample_replicates(va, vb))


def ratio(ps: PointStats, quantity: str, a: tuple, b: tuple) -> Stat:
    """quantity at point a over at point b (means over repetitions), with the two-sample
    t CI of the ratio (:func:`~.stats.ratio_replicates`)."""
    v = per_run(ps, quantity)[0]
    va, vb = v[ps.members(a)], v[ps.members(b)]
    return Stat.of(va.mean() / vb.mean(), stats.ratio_replicates(va, vb))


def at_point(ps: PointStats, quantity: str, at: tuple) -> Stat | None:
    """quantity at one point (mean over its repetitions) with its CI; None where a run
    there lacks it."""
    if not np.all(np.isfinite(per_run(ps, quantity)[0][ps.members(at)])):
        return None
    est, rep = per_point(ps, quantity)
    i = ps.index(at)
    return Stat.of(est[i], rep[:, i])


def read_await_rises(
    ps: PointStats, at: tuple, source: str, rows: list, over: tuple | None = None
) -> Criterion:
    """Do reads queue at the device at point ``at``? Its read await above its unloaded
    read time for requests of the same size (``read_await_excess_ms``, :mod:`~.runs`),
    or, with ``over``, above the await at that point (two-sample t CI on the points'
    repetitions: a stack that reads under every profile), against a material rise,
    MATERIAL_AWAIT_RISE of the unloaded time (docs/PLAN.md: a smaller rise is not one):
    supported when the CI lies above it, refuted when below (``rise_not_material``),
    else inconclusive. A CI above 0 alone does not support it: one G3 read in flight,
    paced by the modeled drive (an idle device between reads), rose 0.03-0.08 ms over
    ~0.1-0.2 ms with no read ever queued (docs/ANALYSIS.md)."""
    name = "read_await_rises"
    what = f"read await at {at[2]} - " + (f"at {over[2]}" if over else "unloaded read time")
    base = at_point(ps, "unloaded_read_await_ms", at)
    if over is None:
        d = at_point(ps, "read_await_excess_ms", at)
    else:
        d = difference(ps, "read_await_ms", at, over) if complete(ps, "read_await_ms") else None
    if d is None or base is None or base.value is None:
        return Criterion.missing(
            name, what, source, "no_read_await_or_unloaded_baseline", threshold=0.0, op=">"
        )
    floor = T.MATERIAL_AWAIT_RISE * base.value
    c = Criterion.judged(
        name,
        what,
        d.value,
        d.ci,
        threshold=floor,
        op=">=",
        source=source,
        supported=[(floor, INF)],
        refuted=[(-INF, floor)],
        unit="ms",
        rows=rows,
    )
    if c.status == NOT_SUPPORTED:
        c.reasons = [f"rise_not_material:{name}"]
    c.details = {"unloaded_read_ms": base.value, "material_rise_ms": floor}
    return c


def total(frame: pl.DataFrame, column: str) -> float | None:
    """Sum of a run column; None when no run recorded it (missing is not zero)."""
    if column not in frame.columns or frame[column].drop_nulls().len() == 0:
        return None
    return float(frame[column].fill_null(0).sum())
