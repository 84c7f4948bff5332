"""H8A and H8B: CPU iowait and device read await against p95/p99.

Correlations are computed over runs (every repetition of every point of both source
hypotheses), not over time bins within runs: the sweeps (context, QoS profile) are what
move p99 and NVMe traffic, so the between-run variation carries the effect, while
within a short demo run a bin's p99 is the maximum of a handful of requests (noise).
They are partial correlations given the source hypothesis (each source's own mean
removed from both quantities, :func:`~.criteria.partial_correlation`): the two sources
run different workloads, and their levels alone would correlate iowait with p99 (H2A's
long prompts have high p99 and no fio, H4A's short ones low p99 and fio's iowait: a
pooled r of -0.46 in a demo run where neither sweep moved the two together).

H8A (stack A; over H2A and H4A), rule: iowait vs p99 correlation near 0. Supported when
Pearson r has its CI within ±NEAR_ZERO_R; not supported when it lies beyond. Flat iowait
(its change across the observed p99 range within ±FLAT_IOWAIT_PP) is reported, never
decisive: flat iowait gives a correlation of noise, which says nothing either way.

H8B (stack B; over H2B and H4B, runs with NVMe engaged: G3 onboards > 0, each run
passing the mechanism gate in its own window), rule:
positive correlations with CI excluding 0. Criteria: r(iowait, p99) and r(read await,
p99) have CIs above 0; flat iowait refutes the first, a CI below 0 refutes either.
"""

from __future__ import annotations

import polars as pl

from spark_harness.analysis import stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import across_runs, complete, partial_correlation, swing
from spark_harness.analysis.evidence import (
    Context,
    PointStats,
    Stat,
    engaged,
    mechanism_gate,
    rows,
    server_reads_report,
    verdict,
)
from spark_harness.analysis.verdict import (
    INCONCLUSIVE,
    INF,
    NOT_SUPPORTED,
    Criterion,
    Gate,
    Verdict,
    judge,
)

SRC_A = "docs/PLAN.md H8A: iowait vs p99 correlation near 0"
SRC_B = "docs/PLAN.md H8B: positive correlations with CI excluding 0"
FLAT = [(-T.FLAT_IOWAIT_PP, T.FLAT_IOWAIT_PP)]


def _inside(s: Stat, regions: list[tuple[float, float]]) -> bool:
    return s.ci is not None and any(a <= s.ci[0] and s.ci[1] <= b for a, b in regions)


def figure_table(runs: pl.DataFrame) -> pl.DataFrame:
    cols = [
        "hyp",
        "stack",
        "point",
        "rep",
        "iowait_pct",
        "read_await_ms",
        "ttft_p95",
        "ttft_p99",
        "g3_onboard_blocks",
    ]
    return runs.select([c for c in cols if c in runs.columns]).with_columns(
        (pl.col("g3_onboard_blocks").fill_null(0) > 0).alias("nvme_engaged")
    )


def _correlation(ps: PointStats, x: str, y: str) -> tuple[Stat, Stat, dict]:
    r = partial_correlation(ps, x, y, by="hyp")
    flat = swing(ps, y, x)  # change of x across the observed range of y
    details = {
        "given": "source hypothesis (each source's mean removed)",
        f"change_of_{x}_over_{y}_range": flat.__dict__,
        "pooled_pearson": across_runs(ps, x, y, stats.pearson).__dict__,
        "pooled_spearman": across_runs(ps, x, y, stats.spearman).__dict__,
    }
    return r, flat, details


def evaluate_a(ctx: Context) -> Verdict:
    used = ctx.data.runs.sort("hyp", "point", "rep")
    ps = PointStats(ctx.data, used)
    name = "iowait_vs_p99_near_zero"
    if not complete(ps, "iowait_pct"):
        c = Criterion.missing(name, "Pearson r(iowait, p99)", SRC_A, "no_iowait")
    else:
        r, flat, details = _correlation(ps, "iowait_pct", "p99")
        near = (-T.NEAR_ZERO_R, T.NEAR_ZERO_R)
        status, reasons = judge(
            r.value, r.ci, supported=[near], refuted=[(-INF, near[0]), (near[1], INF)]
        )
        c = Criterion(
            name=name,
            statistic="Pearson r(iowait, p99) over runs, given the source",
            value=r.value,
            ci=r.ci,
            threshold=T.NEAR_ZERO_R,
            op="|r| <",
            source=SRC_A,
            status=status,
            # flat iowait is reported, never decisive: the rule is about the correlation
            reasons=[f"{x}:{name}" for x in reasons]
            + (["iowait_flat"] if _inside(flat, FLAT) else []),
            unit="r",
            rows=rows(used),
            details={
                **details,
                "flat_band_pp": T.FLAT_IOWAIT_PP,
                "iowait_flat": _inside(flat, FLAT),
            },
        )
    ctx.write_table("fig_iowait_vs_p99.csv", figure_table(used))
    return verdict(ctx, [c], ctx.gates(used), used)


def evaluate_b(ctx: Context) -> Verdict:
    runs = ctx.data.runs.sort("hyp", "point", "rep")
    used = engaged(runs)
    scope = used if used.height else runs
    gates = [*ctx.gates(scope), mechanism_gate(scope, "g3", "runs with G3 onboards")]
    ctx.write_table("fig_iowait_vs_p99.csv", figure_table(runs))
    if used.height < T.MIN_ENGAGED_RUNS:
        gates.append(
            Gate(
                "engaged_runs",
                False,
                INCONCLUSIVE,
                value=used.height,
                threshold=T.MIN_ENGAGED_RUNS,
                reasons=["too_few_engaged_runs"],
            )
        )
        c = Criterion.missing(
            "iowait_tracks_p99", "Pearson r(iowait, p99)", SRC_B, "too_few_engaged_runs"
        )
        return verdict(ctx, [c], gates, used, unused_reason="nvme_not_engaged")
    ps = PointStats(ctx.data, used)
    criteria = []
    for x, name in (("iowait_pct", "iowait_tracks_p99"), ("read_await_ms", "await_tracks_p99")):
        if not complete(ps, x):
            criteria.append(Criterion.missing(name, f"Pearson r({x}, p99)", SRC_B, f"no_{x}"))
            continue
        r, flat, details = _correlation(ps, x, "p99")
        status, reasons = judge(r.value, r.ci, supported=[(0, INF)], refuted=[(-INF, 0)])
        if x == "iowait_pct" and _inside(flat, FLAT):
            status, reasons = NOT_SUPPORTED, ["iowait_flat"]
        details["p95"] = partial_correlation(ps, x, "p95", by="hyp").__dict__
        criteria.append(
            Criterion(
                name=name,
                statistic=f"Pearson r({x}, p99) over runs with NVMe engaged, given the source",
                value=r.value,
                ci=r.ci,
                threshold=0.0,
                op=">",
                source=SRC_B,
                status=status,
                reasons=[f"{s}:{name}" for s in reasons],
                unit="r",
                rows=rows(used),
                details=details,
            )
        )
    criteria.append(server_reads_report(used, SRC_B))
    return verdict(ctx, criteria, gates, used, unused_reason="nvme_not_engaged")
