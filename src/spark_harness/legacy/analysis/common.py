"""Building blocks the v2.5 evaluators share: sweeps in plan order, relative changes,
correlations over runs and the "mechanism engaged" gate.

Every number keeps the v3 analysis's conventions (``analysis.criteria``): a statistic is
computed on the runs as measured and on the same replicates, so its CI has the
repetition as the unit (``analysis.stats.Resampler``; docs/ANALYSIS.md, Statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from spark_harness.analysis import stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import across_runs, per_point
from spark_harness.analysis.evidence import Context, PointStats, Stat, rows
from spark_harness.analysis.verdict import INF, INVALID, Criterion, Gate

#: Column holding each run's sweep value (numeric) in the tables the figures draw.
X = "x"


def sweep_runs(ctx: Context, key: str, value: Callable[[Any], float] | None = None) -> pl.DataFrame:
    """Usable runs of ``ctx.hyp`` with column ``x`` (the sweep value), in plan order."""
    used = ctx.used(hyp=ctx.hyp)
    if key not in used.columns:
        return used.with_columns(pl.lit(None, pl.Float64).alias(X)).clear()
    order = ctx.axis_values(key, used[key].to_list())
    f = value or float
    xs = {v: f(v) for v in order}
    rank = {v: i for i, v in enumerate(order)}
    return (
        used.with_columns(
            pl.col(key).replace_strict(xs, return_dtype=pl.Float64).alias(X),
            pl.col(key).replace_strict(rank, return_dtype=pl.Int64).alias("_order"),
        )
        .sort("_order", "rep")
        .drop("_order")
    )


def labels_in_order(ps: PointStats, runs: pl.DataFrame) -> list[tuple[Any, ...]]:
    """Point labels of ``ps`` in the order their runs appear in ``runs``."""
    seen = list(dict.fromkeys(tuple(r) for r in runs.select(ps.by).iter_rows()))
    return [lab for lab in seen if lab in ps.labels]


def ratio(ps: PointStats, quantity: str, a: tuple, b: tuple) -> Stat:
    """quantity at point a over quantity at point b (means over repetitions), with its CI."""
    est, rep = per_point(ps, quantity)
    i, j = ps.index(a), ps.index(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        return Stat.of(est[i] / est[j], rep[:, i] / rep[:, j])


def rise_criterion(
    name: str, s: Stat, threshold: float, source: str, statistic: str, r: list, **kw: Any
) -> Criterion:
    """A ratio that must exceed ``threshold``: supported above it, refuted at or below."""
    return Criterion.judged(
        name,
        statistic,
        s.value,
        s.ci,
        threshold=threshold,
        op=">",
        source=source,
        supported=[(threshold, INF)],
        refuted=[(-INF, threshold)],
        rows=r,
        **kw,
    )


def correlation_criterion(
    name: str, ps: PointStats, x: str, y: str, source: str, runs: pl.DataFrame, role: str = "rule"
) -> Criterion:
    """Pearson r of y on x over runs: supported when its CI lies above 0, refuted when it
    lies within ±NEAR_ZERO_R (no relation worth the name) or below 0."""
    s = across_runs(ps, x, y, stats.pearson)
    return Criterion.judged(
        name,
        f"Pearson r of {y} and {x} over runs",
        s.value,
        s.ci,
        threshold=0.0,
        op=">",
        source=source,
        supported=[(0.0, INF)],
        refuted=[(-INF, 0.0), (-T.NEAR_ZERO_R, T.NEAR_ZERO_R)],
        rows=rows(runs),
        role=role,
        details={"spearman": across_runs(ps, x, y, stats.spearman).__dict__},
    )


def present(runs: pl.DataFrame, column: str) -> bool:
    """Every run recorded ``column`` (missing telemetry is not a zero)."""
    return column in runs.columns and runs.height > 0 and runs[column].null_count() == 0


def engaged_gate(runs: pl.DataFrame, column: str, what: str, scope: str) -> Gate:
    """The mechanism a claim needs happened: ``column`` (a counter increase) > 0 in ``runs``."""
    reasons = []
    value = None
    if runs.height == 0:
        reasons.append("mechanism_no_runs")
    elif column not in runs.columns or runs[column].drop_nulls().len() == 0:
        reasons.append(f"no_{column}_telemetry")
    else:
        value = float(runs[column].fill_null(0).sum())
        if not value > 0:
            reasons.append(f"no_{what}")
    return Gate(
        "mechanism",
        not reasons,
        INVALID,
        value=value,
        reasons=reasons,
        details={"scope": scope, "column": column, "runs": rows(runs)},
    )
