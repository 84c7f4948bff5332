"""H7: KV telemetry predicts NVMe traffic and explains p99 (stack B; over H2B and H4B).

Rule (docs/PLAN.md): predicted read bytes (G3 onboards x block bytes) vs observed
device reads: ratio and R²; p99 vs G3 fetch p95. Observed bytes are the server's own
reads (:func:`with_bytes`: per-process, else device reads minus idle and minus what fio
reported reading). The runs used are those with G3 onboards, each passing the mechanism
gate. Criteria: the ratio of summed observed to summed predicted bytes lies within
H7_RATIO_BAND (CI); R² of observed on predicted over runs is at least H7_MIN_R2 (CI);
Pearson r(p99, G3 fetch p95), or r(p99, G3 onboards/s) where the server exports no
fetch latency (KVBM), has its CI above 0.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from spark_harness.analysis import stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import TAIL, across_runs, complete, per_run, resolve
from spark_harness.analysis.evidence import (
    SERVER_READS,
    Context,
    PointStats,
    Stat,
    engaged,
    mechanism_gate,
    not_engaged_reasons,
    rows,
    server_reads,
    verdict,
)
from spark_harness.analysis.verdict import INF, Criterion, Verdict

SOURCE = "docs/PLAN.md H7: predicted read bytes vs observed device reads: ratio and R²"
SRC_FETCH = "docs/PLAN.md H7: p99 vs G3 fetch p95"
PRED, OBS = "predicted_read_bytes", "observed_read_bytes"


RATE = "g3_onboards_per_s"


def with_bytes(frame: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """Add predicted and observed (the server's own, :func:`~..evidence.server_reads`)
    read bytes per run, and the G3 onboard rate; return the method observed used."""
    frame, method = server_reads(frame)
    return frame.with_columns(
        (pl.col("g3_onboard_blocks") * pl.col("block_bytes")).alias(PRED),
        (pl.col("g3_onboard_blocks") / pl.col("window_s")).alias(RATE),
        pl.col(SERVER_READS).alias(OBS),
    ), method


def bytes_criteria(ps: PointStats, used: pl.DataFrame, method: str | None) -> list[Criterion]:
    if not complete(ps, PRED):
        reason = "no_block_bytes" if used["block_bytes"].null_count() else "no_kv_tier_telemetry"
        return [Criterion.missing("read_bytes_ratio", "observed / predicted bytes", SOURCE, reason)]
    if method is None or not complete(ps, OBS):
        return [
            Criterion.missing(
                "read_bytes_ratio",
                "observed / predicted bytes",
                SOURCE,
                "no_server_read_bytes_nor_perturbation_report",
            )
        ]
    (p0, pb), (o0, ob) = per_run(ps, PRED), per_run(ps, OBS)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = Stat.of(o0.sum() / p0.sum(), ob.sum(axis=1) / pb.sum(axis=1))
    lo, hi = T.H7_RATIO_BAND
    r = across_runs(ps, PRED, OBS, stats.pearson)
    r2 = Stat(None if r.value is None else r.value**2, None if r.ci is None else _square_ci(r.ci))
    return [
        Criterion.judged(
            "read_bytes_ratio",
            "sum of observed / sum of predicted device read bytes",
            ratio.value,
            ratio.ci,
            threshold=lo,
            op="within",
            source=SOURCE,
            supported=[(lo, hi)],
            refuted=[(-INF, lo), (hi, INF)],
            unit="ratio",
            rows=rows(used),
            details={
                "band": [lo, hi],
                "observed_method": method,
                "predicted_bytes": float(p0.sum()),
                "observed_bytes": float(o0.sum()),
            },
        ),
        Criterion.judged(
            "read_bytes_r2",
            "R² of observed on predicted read bytes over runs",
            r2.value,
            r2.ci,
            threshold=T.H7_MIN_R2,
            op=">=",
            source=SOURCE,
            supported=[(T.H7_MIN_R2, INF)],
            refuted=[(-INF, T.H7_MIN_R2)],
            unit="R²",
            rows=rows(used),
            details={"pearson": r.__dict__},
        ),
    ]


def _square_ci(ci: tuple[float, float]) -> tuple[float, float]:
    """CI of r² from the CI of r (monotone in |r|)."""
    lo, hi = ci
    return (0.0 if lo <= 0 <= hi else min(lo * lo, hi * hi)), max(lo * lo, hi * hi)


def fetch_criterion(ps: PointStats, used: pl.DataFrame) -> Criterion:
    """p99 (the tail the windows support, ``criteria.TAIL``) follows G3 fetch p95; where
    the server exports no fetch latency (KVBM), the G3 onboard rate stands in for it (the
    method is recorded)."""
    name = "p99_vs_g3_fetch_p95"
    x = next((c for c in ("g3_fetch_p95_ms", RATE) if complete(ps, c)), None)
    if x is None:
        return Criterion.missing(
            name,
            "Pearson r(p99, G3 fetch p95)",
            SRC_FETCH,
            "no_g3_fetch_latency_nor_onboards",
            threshold=0.0,
            op=">",
        )
    r = across_runs(ps, x, TAIL, stats.pearson)
    return Criterion.positive(
        name,
        f"Pearson r({resolve(ps, TAIL)}, {x}) over runs",
        r.value,
        r.ci,
        source=SRC_FETCH,
        unit="r",
        rows=rows(used),
        details={
            "method": "fetch_latency" if x == "g3_fetch_p95_ms" else "g3_onboard_rate",
            "slope": across_runs(ps, x, TAIL, stats.slope).__dict__,
        },
    )


def evaluate(ctx: Context) -> Verdict:
    runs, method = with_bytes(ctx.data.runs.sort("hyp", "point", "rep"))
    # every run used must show the mechanism in its own window: those with G3 traffic
    used = engaged(runs)
    scope = used if used.height else runs
    gates = [*ctx.gates(scope), mechanism_gate(scope, "g3", "runs with G3 onboards")]
    cols = ["hyp", "stack", "point", "rep", PRED, OBS, "g3_onboard_blocks", "block_bytes"]
    ctx.write_table("fig_predicted_vs_observed_reads.csv", runs.select(cols))
    ctx.write_table(
        "fig_p99_vs_g3_fetch_p95.csv",
        runs.select("hyp", "stack", "point", "rep", "g3_fetch_p95_ms", RATE, "ttft_p99"),
    )
    if used.height < T.MIN_ENGAGED_RUNS:
        c = Criterion.missing(
            "read_bytes_ratio", "observed / predicted", SOURCE, "too_few_engaged_runs"
        )
        return verdict(ctx, [c], gates, used, unused_reason=not_engaged_reasons(runs))
    ps = PointStats(ctx.data, used)
    criteria = [*bytes_criteria(ps, used, method), fetch_criterion(ps, used)]
    return verdict(ctx, criteria, gates, used, unused_reason=not_engaged_reasons(runs))
