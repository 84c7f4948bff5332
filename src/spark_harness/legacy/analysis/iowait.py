"""v2.5 H8 (analytical, over H2 and H4): iowait and read await track storage-bound tails.

Runs count as storage-bound when the server paged (``paging_faults`` > 0 in the
window); at least MIN_ENGAGED_RUNS of them are needed. Criteria: Pearson r of CPU
iowait and p99 TTFT, and of device read await and p99 TTFT, over those runs, each have
their CI above 0 (refuted within ±NEAR_ZERO_R or below 0). As in the v3 H8 rules the
correlation is between runs: the sweeps are what move p99 and storage traffic.
"""

from __future__ import annotations

import polars as pl

from spark_harness.analysis import thresholds as T
from spark_harness.analysis.evidence import Context, PointStats, verdict
from spark_harness.analysis.verdict import INCONCLUSIVE, Criterion, Gate, Verdict
from spark_harness.legacy.analysis.common import correlation_criterion, present

SOURCE = "LEGACY.md v2.5 H8: iowait and read await correlate with p99 once storage-bound"


def evaluate(ctx: Context) -> Verdict:
    """v2.5 H8 (module docstring)."""
    runs = ctx.used()
    engaged = (
        runs.filter(pl.col("paging_faults").fill_null(0) > 0)
        if "paging_faults" in runs.columns
        else runs.clear()
    )
    gates = ctx.gates(engaged)
    enough = engaged.height >= T.MIN_ENGAGED_RUNS
    gates.append(
        Gate(
            "storage_bound_runs",
            enough,
            INCONCLUSIVE,
            value=float(engaged.height),
            threshold=float(T.MIN_ENGAGED_RUNS),
            reasons=[] if enough else ["too_few_storage_bound_runs"],
        )
    )
    if not enough:
        c = Criterion.missing("r_iowait_p99", "Pearson r", SOURCE, "too_few_storage_bound_runs")
        return verdict(ctx, [c], gates, engaged)
    ps = PointStats(ctx.data, engaged)
    criteria = []
    for name, col in (("r_iowait_p99", "iowait_pct"), ("r_read_await_p99", "read_await_ms")):
        if present(engaged, col):
            criteria.append(correlation_criterion(name, ps, col, "ttft_p99", SOURCE, engaged))
        else:
            criteria.append(Criterion.missing(name, "Pearson r", SOURCE, f"no_{col}"))
    cols = [
        "hyp",
        "stack",
        "point",
        "rep",
        "iowait_pct",
        "read_await_ms",
        "ttft_p50",
        "ttft_p99",
        "paging_faults",
    ]
    ctx.write_table("fig_iowait_vs_p99.csv", runs.select([c for c in cols if c in runs.columns]))
    return verdict(ctx, criteria, gates, engaged)
