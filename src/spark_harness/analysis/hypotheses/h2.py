"""H2A and H2B: the context sweep at U_work, without and with a tiered KV cache.

H2A (stack A), rule: device reads within 10 % of idle; p99 growth explained by
queue/compute; rejections counted. Criteria: the largest relative excess of window read
kB/s over idle across contexts has its CI below 10 %; no G3 onboards in any run (missing
counters are missing, not zero: :func:`~..evidence.no_tier_traffic`). The p99 growth
(ratio and its correlation with context and with queued requests) and the rejections
are reported as evidence.

H2B (stack B), rule: p99 knee located; G3 hit share ≥ 20 % at the knee; device read
await rises with it. Criteria: the storage knee (docs/PLAN.md definition) is located;
G3's share of reused tokens at the knee has its CI above 20 %; read await at the knee
exceeds the device's unloaded read time for requests of the same size (CI; the idle
phase completes no reads to compare with, :mod:`~spark_harness.telemetry.probe`).
Without G3 fetch latency (KVBM) the knee is the fallback definition, decided on CIs
(:func:`_knee_fallback`). Mechanism gate: G3 offloads and onboards in each run at and
beyond the knee. The context axis is found by its role.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from spark_harness.analysis import axes, knee, stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import (
    across_runs,
    at_point,
    complete,
    per_point,
    read_await_rises,
)
from spark_harness.analysis.evidence import (
    SERVER_READS,
    Context,
    PointStats,
    Stat,
    mechanism_gate,
    no_tier_traffic,
    rows,
    server_reads,
    verdict,
)
from spark_harness.analysis.runs import with_tier_shares
from spark_harness.analysis.verdict import INF, SUPPORTED, Criterion, Verdict

SRC_A = "docs/PLAN.md H2A: device reads within 10 % of idle"
SRC_KNEE = "docs/PLAN.md storage knee: G3 fetch >= 50 % of TTFT at p95"
SRC_KNEE_FALLBACK = (
    "docs/PLAN.md storage knee (no fetch latency): device reads > 1.5 x idle, read await"
    " > 1.5 x unloaded"
    " and p95 TTFT > 1.5 x its baseline"
)
SRC_HIT = "docs/PLAN.md H2B: G3 hit share >= 20 % at the knee"
SRC_AWAIT = "docs/PLAN.md H2B: device read await rises with it"
CURVE_COLUMNS = [
    "hyp",
    "stack",
    "point",
    "n_reps",
    "ttft_p50_ms",
    "ttft_p50_ci_lo",
    "ttft_p50_ci_hi",
    "ttft_p95_ms",
    "ttft_p95_ci_lo",
    "ttft_p95_ci_hi",
    "ttft_p99_ms",
    "ttft_p99_ci_lo",
    "ttft_p99_ci_hi",
    "n_window_errors",
    "n_window_rejected",
    "read_kbps",
    "idle_read_kbps",
    "read_await_ms",
    "g3_onboard_blocks",
    "g3_fetch_share_p95",
]


def p99_vs_context(ctx: Context, used: pl.DataFrame, axis: str) -> pl.DataFrame:
    """The p99-vs-context curve (and what sits beside it) from the summary's rows."""
    t = ctx.summary.join(used.select("hyp", "stack").unique(), on=["hyp", "stack"], how="semi")
    cols = [*CURVE_COLUMNS[:3], axis, *CURVE_COLUMNS[3:]]
    return t.select([c for c in cols if c in t.columns]).sort("stack", axis)


def _sweep(ctx: Context) -> tuple[pl.DataFrame, PointStats, str]:
    """The context sweep (its axis found by role), in context order."""
    axis = axes.require(ctx.hyp, ctx.config, "context")
    used = with_tier_shares(ctx.used(hyp=ctx.hyp)).sort(axis, "rep")
    return used, PointStats(ctx.data, used), axis


def _reads_over_idle(
    ctx: Context, used: pl.DataFrame, ps: PointStats
) -> tuple[np.ndarray, np.ndarray, str, str] | None:
    """Per point, the window's reads relative to the idle baseline (floored): estimates,
    replicates, the statistic and its method; None without the counters. The server's
    own reads (its process tree's counter) where every run recorded them: another
    process reading the device in the window is not A's traffic. Else the device's
    reads minus its idle rate."""
    own, method = server_reads(used)
    if method == "server_read_bytes" and "window_s" in own.columns:
        kbps = (pl.col(SERVER_READS) / pl.col("window_s") / 1024).alias("server_read_kbps")
        ps_own = PointStats(ctx.data, own.with_columns(kbps))
        if complete(ps_own, "idle_read_kbps"):
            (r, rr), (i, ir) = (
                per_point(ps_own, "server_read_kbps"),
                per_point(ps_own, "idle_read_kbps"),
            )
            return (
                r / np.maximum(i, T.IDLE_READ_FLOOR_KBPS),
                rr / np.maximum(ir, T.IDLE_READ_FLOOR_KBPS),
                "max over contexts of the server's own read kB/s / max(idle, floor)",
                "server_read_bytes",
            )
    if complete(ps, "read_kbps", "idle_read_kbps"):
        (r, rr), (i, ir) = per_point(ps, "read_kbps"), per_point(ps, "idle_read_kbps")
        return (
            (r - i) / np.maximum(i, T.IDLE_READ_FLOOR_KBPS),
            (rr - ir) / np.maximum(ir, T.IDLE_READ_FLOOR_KBPS),
            "max over contexts of (device read kB/s - idle) / max(idle, floor)",
            "device_reads",
        )
    return None


def evaluate_a(ctx: Context) -> Verdict:
    used, ps, axis = _sweep(ctx)
    criteria = []
    reads = _reads_over_idle(ctx, used, ps)
    if reads is not None:
        rel, rel_rep, statistic, method = reads
        # the largest context's rise, with a CI that covers the maximum (the replicates'
        # own maximum is biased up: a true 9 % refuted in over 10 % of experiments)
        s = Stat(*stats.max_signed(rel, rel_rep))
        criteria.append(
            Criterion.judged(
                "device_reads_vs_idle",
                statistic,
                s.value,
                s.ci,
                threshold=T.H2A_READS_OVER_IDLE,
                op="<",
                source=SRC_A,
                supported=[(-INF, T.H2A_READS_OVER_IDLE)],
                refuted=[(T.H2A_READS_OVER_IDLE, INF)],
                unit="share",
                rows=rows(used),
                details={
                    "per_point": dict(zip([p for _, _, p in ps.labels], rel.tolist(), strict=True)),
                    "idle_floor_kbps": T.IDLE_READ_FLOOR_KBPS,
                    "method": method,
                },
            )
        )
    else:
        criteria.append(
            Criterion.missing(
                "device_reads_vs_idle",
                "read kB/s vs idle",
                SRC_A,
                "no_device_counters",
                threshold=T.H2A_READS_OVER_IDLE,
            )
        )
    criteria.append(
        no_tier_traffic(used, "g3", "no_g3_traffic", "docs/PLAN.md H2A: no KV storage traffic")
    )
    est, rep = per_point(ps, "p99")
    growth = Stat.of(est[-1] / est[0], rep[:, -1] / rep[:, 0])
    info = {
        "p99_growth_ratio": growth.__dict__,
        "spearman_p99_vs_context": across_runs(ps, axis, "p99", stats.spearman).__dict__,
    }
    if complete(ps, "kv_waiting"):
        info["pearson_p99_vs_queued"] = across_runs(ps, "kv_waiting", "p99", stats.pearson).__dict__
    criteria.append(
        Criterion(
            name="p99_growth",
            statistic="p99 at the largest / smallest context",
            value=growth.value,
            ci=growth.ci,
            threshold=None,
            op="",
            source="docs/PLAN.md H2A: p99 growth explained by queue/compute (reported)",
            status=SUPPORTED,
            reasons=[],
            unit="ratio",
            rows=rows(used),
            details=info,
            role="info",
        )
    )
    ctx.write_table("fig_p99_vs_context.csv", p99_vs_context(ctx, used, axis))
    return verdict(ctx, criteria, ctx.gates(used), used)


def _knee_fetch(ps: PointStats, ctx: Context) -> tuple[int | None, np.ndarray, np.ndarray]:
    """Storage knee from G3 fetch time: shares per point and their replicates."""
    fetch = [ctx.data.fetch.get(r, np.empty(0)) for r in ps.runs["run_id"]]
    f95 = ps.res.percentiles(fetch, [0.95])[..., 0]
    rep = ps.res.by_stratum(f95 / ps.slots("p95"))
    est = ps.estimate("g3_fetch_share_p95")
    return knee.storage_knee(list(est)), est, rep


def _knee_fallback(ps: PointStats) -> tuple[int | None, np.ndarray, np.ndarray]:
    """Storage knee without fetch latency, decided on CIs: per point the smallest of
    reads / idle reads, read await / the device's unloaded read time (the idle phase
    completes few reads or none, so it has no await to compare with) and p95 / p95 at
    the first context."""
    ratios = [
        (pair[0][0] / pair[1][0], pair[0][1] / pair[1][1])
        for pair in (
            (per_point(ps, "read_iops"), per_point(ps, "idle_read_iops")),
            (per_point(ps, "read_await_ms"), per_point(ps, "unloaded_read_await_ms")),
        )
    ]
    p95, p95_rep = per_point(ps, "p95")
    ratios.append((p95 / p95[0], p95_rep / p95_rep[:, :1]))
    est = np.min([e for e, _ in ratios], axis=0)
    rep = np.min([r for _, r in ratios], axis=0)
    lo = [Stat.of(est[i], rep[:, i]).ci for i in range(len(est))]
    k = knee.storage_knee_without_fetch([math.nan if c is None else c[0] for c in lo])
    return k, est, rep


def storage_knee_criterion(ctx: Context, ps: PointStats) -> tuple[Criterion, int | None]:
    name = "storage_knee"
    labels = [lab[2] for lab in ps.labels]
    fetch_known = complete(ps, "g3_fetch_p95_ms")
    if fetch_known:
        k, est, rep = _knee_fetch(ps, ctx)
        threshold, src, what = T.STORAGE_KNEE_FETCH_SHARE, SRC_KNEE, "p95 G3 fetch / p95 TTFT"
    elif complete(ps, "read_iops", "idle_read_iops", "read_await_ms", "unloaded_read_await_ms"):
        k, est, rep = _knee_fallback(ps)
        threshold, src = T.STORAGE_KNEE_BASELINE_FACTOR, SRC_KNEE_FALLBACK
        what = "min(reads / idle, read await / unloaded, p95 TTFT / p95 at the first context)"
    else:
        return Criterion.missing(
            name, "storage knee", SRC_KNEE, "no_fetch_latency_nor_device_counters"
        ), None
    i = k if k is not None else int(np.nanargmax(est))
    s = Stat.of(est[i], rep[:, i])
    c = Criterion.judged(
        name,
        f"{what} at the knee" if k is not None else f"largest {what} (no knee)",
        s.value,
        s.ci,
        threshold=threshold,
        op=">=",
        source=src,
        supported=[(threshold, INF)],
        refuted=[(-INF, threshold)],
        unit="ratio",
        rows=rows(ps.runs),
        details={
            "knee_point": None if k is None else labels[k],
            "per_point": dict(zip(labels, est.tolist(), strict=True)),
            "method": "fetch_latency" if fetch_known else "device_counters",
        },
    )
    if k is None:
        c.reasons.append("no_storage_knee_in_sweep")
    return c, k


def hit_share_criterion(ps: PointStats, at: tuple) -> Criterion:
    """G3's share of the reused tokens at ``at``, from the first column every run there
    has (the simulator's share, else KVBM's hit rate); missing, never zero, otherwise."""
    name = "g3_hit_share_at_knee"
    found = (
        (c, s) for c in ("g3_hit_share", "kv_g3_hit_rate") if (s := at_point(ps, c, at)) is not None
    )
    column, s = next(found, (None, None))
    if s is None:
        return Criterion.missing(
            name,
            "G3 share of reused tokens at the knee",
            SRC_HIT,
            "no_tier_hit_evidence",
            threshold=T.H2B_G3_HIT_SHARE,
            op=">=",
        )
    return Criterion.judged(
        name,
        f"{column} at {at[2]}",
        s.value,
        s.ci,
        threshold=T.H2B_G3_HIT_SHARE,
        op=">=",
        source=SRC_HIT,
        supported=[(T.H2B_G3_HIT_SHARE, INF)],
        refuted=[(-INF, T.H2B_G3_HIT_SHARE)],
        unit="share",
        rows=rows(ps.point_runs(at)),
    )


def tier_shares(ps: PointStats, axis: str) -> pl.DataFrame:
    cols = ["share_g1", "share_g2", "share_g3", "share_miss", "g3_hit_share"]
    frame = {"point": [lab[2] for lab in ps.labels]}
    frame[axis] = per_point(ps, axis)[0].tolist()
    for c in cols:
        frame[c] = per_point(ps, c)[0].tolist()
    return pl.DataFrame(frame)


def evaluate_b(ctx: Context) -> Verdict:
    used, ps, axis = _sweep(ctx)
    knee_c, k = storage_knee_criterion(ctx, ps)
    at = ps.labels[k] if k is not None else ps.labels[-1]
    criteria = [
        knee_c,
        hit_share_criterion(ps, at),
        read_await_rises(ps, at, SRC_AWAIT, rows(ps.point_runs(at))),
    ]
    beyond = ps.labels[(k if k is not None else len(ps.labels) - 1) :]
    scope = used.filter(pl.col("point").is_in([lab[2] for lab in beyond]))
    gates = [*ctx.gates(used), mechanism_gate(scope, "g3", f"runs at and beyond {at[2]}")]
    ctx.write_table("fig_p99_vs_context.csv", p99_vs_context(ctx, used, axis))
    ctx.write_table("fig_tier_hit_shares.csv", tier_shares(ps, axis))
    stacks = {s: {"storage_knee": knee_c.details.get("knee_point")} for s in set(used["stack"])}
    return verdict(ctx, criteria, gates, used, stacks=stacks)
