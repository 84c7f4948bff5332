"""H7: KV telemetry predicts NVMe traffic and explains p99 (stack B; over H2B and H4B).

Rule (HYPOTHESES.md): predicted read bytes (G3 onboards x block bytes) vs observed
device reads: ratio and R²; p99 vs G3 fetch p95. Observed bytes are the watched
devices' reads over the window minus the idle read rate times the window. Criteria:
the ratio of summed observed to summed predicted bytes lies within H7_RATIO_BAND (CI);
R² of observed on predicted over runs is at least H7_MIN_R2 (CI); Pearson r(p99, G3
fetch p95) has its CI above 0.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from spark_harness.analysis import stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import across_runs, complete, per_run
from spark_harness.analysis.evidence import Context, PointStats, Stat, mechanism_gate, rows, verdict
from spark_harness.analysis.verdict import INF, Criterion, Verdict

SOURCE = "HYPOTHESES.md H7: predicted read bytes vs observed device reads: ratio and R²"
SRC_FETCH = "HYPOTHESES.md H7: p99 vs G3 fetch p95"
PRED, OBS = "predicted_read_bytes", "observed_read_bytes"


def with_bytes(frame: pl.DataFrame) -> pl.DataFrame:
    idle = pl.col("idle_read_kbps") * 1024 * pl.col("window_s")
    return frame.with_columns(
        (pl.col("g3_onboard_blocks") * pl.col("block_bytes")).alias(PRED),
        (pl.col("read_bytes") - idle).alias(OBS),
    )


def bytes_criteria(ps: PointStats, used: pl.DataFrame) -> list[Criterion]:
    if not complete(ps, PRED):
        reason = "no_block_bytes" if used["block_bytes"].null_count() else "no_kv_tier_telemetry"
        return [Criterion.missing("read_bytes_ratio", "observed / predicted bytes", SOURCE, reason)]
    if not complete(ps, OBS):
        return [
            Criterion.missing(
                "read_bytes_ratio", "observed / predicted bytes", SOURCE, "no_device_counters"
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
    name = "p99_vs_g3_fetch_p95"
    if not complete(ps, "g3_fetch_p95_ms"):
        return Criterion.missing(
            name,
            "Pearson r(p99, G3 fetch p95)",
            SRC_FETCH,
            "no_g3_fetch_latency",
            threshold=0.0,
            op=">",
        )
    r = across_runs(ps, "g3_fetch_p95_ms", "p99", stats.pearson)
    return Criterion.positive(
        name,
        "Pearson r(p99, G3 fetch p95) over runs",
        r.value,
        r.ci,
        source=SRC_FETCH,
        unit="r",
        rows=rows(used),
        details={
            "slope_ms_per_ms": across_runs(ps, "g3_fetch_p95_ms", "p99", stats.slope).__dict__
        },
    )


def evaluate(ctx: Context) -> Verdict:
    used = with_bytes(ctx.data.runs).sort("hyp", "point", "rep")
    ps = PointStats(ctx.data, used)
    criteria = [*bytes_criteria(ps, used), fetch_criterion(ps, used)]
    gates = [*ctx.gates(used), mechanism_gate(used, "g3", "every run of the sources")]
    cols = ["hyp", "stack", "point", "rep", PRED, OBS, "g3_onboard_blocks", "block_bytes"]
    ctx.write_table("fig_predicted_vs_observed_reads.csv", used.select(cols))
    ctx.write_table(
        "fig_p99_vs_g3_fetch_p95.csv",
        used.select("hyp", "stack", "point", "rep", "g3_fetch_p95_ms", "ttft_p99"),
    )
    return verdict(ctx, criteria, gates, used)
