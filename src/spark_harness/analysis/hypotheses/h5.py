"""H5: larger KV working sets worsen p95/p99 at fixed compute (stack B).

Rule (docs/PLAN.md): p95/p99 vs working-set bytes; device IOPS vs working set. The
working set of a run is measured, not assumed: every session's final context (prompt +
completion tokens of its last turn), summed over sessions, in bytes where the KV bytes
per token are known (``block_bytes / block_tokens``), else in tokens. Criteria: the p99
and the p95 slopes on the working set (:func:`~..criteria.material_slope`); where a
window holds under 200 requests its p99 is one of its largest few requests, so the p99
slope is reported (``info``) and p95 decides alone. The IOPS slope is reported.
Mechanism gate: offloads and onboards (any tier) at the largest working set.
"""

from __future__ import annotations

import polars as pl

from spark_harness.analysis import stats
from spark_harness.analysis.criteria import across_runs, complete, material_slope
from spark_harness.analysis.evidence import Context, PointStats, mechanism_gate, rows, verdict
from spark_harness.analysis.verdict import SUPPORTED, Criterion, Verdict

WS = "working_set"
SOURCE = "docs/PLAN.md H5: p95/p99 vs working-set bytes"


def with_working_set(frame: pl.DataFrame) -> tuple[pl.DataFrame, str]:
    """Add the working set per run, in bytes if the KV size per token is known."""
    known = frame["block_bytes"].is_not_null().all() and frame["block_tokens"].is_not_null().all()
    per_token = pl.col("block_bytes") / pl.col("block_tokens") if known else pl.lit(1.0)
    unit = "bytes" if known else "tokens"
    return frame.with_columns((pl.col("working_set_tokens") * per_token).alias(WS)), unit


def evaluate(ctx: Context) -> Verdict:
    used, unit = with_working_set(ctx.used(hyp=ctx.hyp))
    used = used.sort(WS, "rep", nulls_last=True)
    gates = ctx.gates(used)
    ps = PointStats(ctx.data, used)
    if not complete(ps, WS):
        c = Criterion.missing("slope_p99_vs_working_set", "slope", SOURCE, "no_session_ids")
        return verdict(ctx, [c], gates, used)
    r = rows(used)
    criteria = [
        material_slope("slope_p99_vs_working_set", ps, WS, "p99", SOURCE, f"ms/{unit}", r),
        material_slope("slope_p95_vs_working_set", ps, WS, "p95", SOURCE, f"ms/{unit}", r),
    ]
    tail, too_short = ps.tail()
    if tail != "p99":
        criteria[0].role, criteria[0].reasons = "info", too_short
    if complete(ps, "read_iops"):
        s = across_runs(ps, WS, "read_iops", stats.slope)
        criteria.append(
            Criterion(
                name="slope_iops_vs_working_set",
                statistic="OLS slope of device read IOPS on the working set",
                value=s.value,
                ci=s.ci,
                threshold=None,
                op="",
                source="docs/PLAN.md H5: device IOPS vs working set",
                status=SUPPORTED,
                reasons=[],
                unit=f"iops/{unit}",
                rows=r,
                role="info",
            )
        )
    largest = used.filter(pl.col("point") == ps.labels[-1][2])
    gates.append(
        mechanism_gate(largest, "any", f"runs at the largest working set ({ps.labels[-1][2]})")
    )
    cols = [
        "hyp",
        "stack",
        "point",
        "rep",
        WS,
        "working_set_tokens",
        "n_sessions",
        "ttft_p95",
        "ttft_p99",
        "read_iops",
    ]
    ctx.write_table(
        "fig_p99_vs_working_set.csv", used.select([c for c in cols if c in used.columns])
    )
    return verdict(ctx, criteria, gates, used)
