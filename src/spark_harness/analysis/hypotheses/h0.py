"""H0: queueing sets the usable concurrency U_work (stacks A and B).

Rule (docs/PLAN.md): p50/p95/p99 vs concurrency; U_work per stack; below the knee B's
p50 TTFT is within ±5 % of A's. A sweep without a knee refutes the knee only once it
passed saturation (a step that adds users but not 10 % more completed requests/s) with
the largest p99/p50 CI below 2: queueing then shifts every request's wait alike, and
U_work cannot be located as a knee; a sweep that stops before saturation says nothing.
Parity measures the serving path's own overhead only when neither stack reuses KV (the
plan's per-request nonce): with cached tokens > 0 on either stack in the window, or not
counted, parity is inconclusive with the reason. Criteria:
per stack, a knee exists (the smaller p99/p50 of the two knee steps has its CI above 2);
across stacks, the largest |p50_B/p50_A - 1| over the steps below both knees has its CI
within 5 %. The concurrency axis is found by its role.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from spark_harness.analysis import axes, stats, u_work
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.evidence import (
    Context,
    PointStats,
    Stat,
    rows,
    verdict,
)
from spark_harness.analysis.verdict import INCONCLUSIVE, INF, Criterion, Verdict, judge

SOURCE_KNEE = "docs/PLAN.md U_work: knee = first step with p99 > 2 x p50, next step too"
SOURCE_PARITY = "docs/PLAN.md H0: below the knee B's p50 TTFT is within ±5 % of A's"


def knee_criterion(sw: u_work.Sweep, res: dict[str, Any]) -> Criterion:
    """The knee of one stack, judged on the smaller ratio of its two knee steps."""
    name = f"knee_{sw.stack}"
    ratio, reps = sw.ratio()
    knee_users = res["knee"]
    runs = sw.ps.runs
    if knee_users is None:
        i = int(np.nanargmax(ratio))
        s = Stat.of(ratio[i], reps[:, i])
        saturated = res["saturated_at"]
        # past saturation no knee refutes it; before, the sweep stopped short of deciding
        status, why = (
            judge(s.value, s.ci, supported=[], refuted=[(-INF, T.KNEE_P99_OVER_P50)])
            if saturated is not None
            else (INCONCLUSIVE, [])
        )
        where = "no knee found"
        if saturated is not None:
            where = f"no knee; saturated from {saturated} users"
        return Criterion(
            name=name,
            statistic=f"largest p99/p50 over the sweep ({where})",
            value=s.value,
            ci=s.ci,
            threshold=T.KNEE_P99_OVER_P50,
            op=">",
            source=SOURCE_KNEE,
            status=status,
            reasons=[*(f"{r}:{name}" for r in why), f"no_knee_in_sweep:{sw.stack}"],
            unit="ratio",
            rows=rows(runs),
            details={"u_work": res["u_work"], "reason": res["reason"], "saturated_at": saturated},
        )
    k = sw.users.index(knee_users)
    s = Stat.of(min(ratio[k], ratio[k + 1]), np.minimum(reps[:, k], reps[:, k + 1]))
    c = Criterion.judged(
        name,
        f"min p99/p50 at the knee steps {sw.users[k]} and {sw.users[k + 1]}",
        s.value,
        s.ci,
        threshold=T.KNEE_P99_OVER_P50,
        op=">",
        source=SOURCE_KNEE,
        supported=[(T.KNEE_P99_OVER_P50, INF)],
        refuted=[(-INF, T.KNEE_P99_OVER_P50)],
        unit="ratio",
        rows=rows(runs),
        details={"u_work": res["u_work"], "knee": knee_users, "reason": res["reason"]},
    )
    if res["reason"].startswith("knee_at_first_step"):
        c.reasons.append(f"knee_at_first_step:{sw.stack}")
    return c


def reuse_criterion(used: pl.DataFrame) -> Criterion | None:
    """None when neither stack reused KV in any window (cached tokens 0 everywhere);
    otherwise the inconclusive parity criterion that says why parity is not judged."""
    cached = used["cached_tokens"] if "cached_tokens" in used.columns else None
    if cached is not None and cached.null_count() == 0 and (cached == 0).all():
        return None
    reason = (
        "no_cached_token_counts"
        if cached is None or cached.null_count()
        else ("prefix_reuse_confounds_parity")
    )
    per_stack = (
        used.group_by("stack").agg(pl.col("cached_tokens").sum()).sort("stack").rows()
        if cached is not None
        else []
    )
    return Criterion.missing(
        "p50_parity_B_vs_A",
        "max |p50_B/p50_A - 1| below the knee",
        SOURCE_PARITY,
        reason,
        threshold=T.H0_P50_PARITY,
        op="<",
        rows=rows(used),
        details={"cached_tokens_per_stack": dict(per_stack)},
    )


def parity_criterion(ctx: Context, axis: str, u: dict[str, int]) -> Criterion:
    """B's p50 vs A's at every concurrency below both knees, where neither reuses KV."""
    name = "p50_parity_B_vs_A"
    limit = min(u["A"], u["B"])
    used = ctx.used(hyp=ctx.hyp).filter(pl.col("stack").is_in(["A", "B"]) & (pl.col(axis) <= limit))
    reuse = reuse_criterion(used)
    if reuse is not None:
        return reuse
    common = (
        used.group_by(axis)
        .agg(pl.col("stack").n_unique().alias("n"))
        .filter(pl.col("n") == 2)[axis]
        .sort()
        .to_list()
    )
    if not common:
        return Criterion.missing(
            name,
            "max |p50_B/p50_A - 1| below the knee",
            SOURCE_PARITY,
            "no_common_steps_below_knee",
            threshold=T.H0_P50_PARITY,
        )
    used = used.filter(pl.col(axis).is_in(common)).sort("stack", axis)
    ps = PointStats(ctx.data, used, by=("stack", axis))
    est, rep = ps.estimate("ttft_p50"), ps.replicates("p50")
    a = [ps.index(("A", c)) for c in common]
    b = [ps.index(("B", c)) for c in common]
    rel_est = np.abs(est[b] / est[a] - 1)
    s = Stat(*stats.max_abs(rel_est, rep[:, b] / rep[:, a] - 1))
    return Criterion.judged(
        name,
        "max over steps below both knees of |p50_B / p50_A - 1|",
        s.value,
        s.ci,
        threshold=T.H0_P50_PARITY,
        op="<",
        source=SOURCE_PARITY,
        supported=[(-INF, T.H0_P50_PARITY)],
        refuted=[(T.H0_P50_PARITY, INF)],
        unit="share",
        rows=rows(used),
        details={
            "steps": common,
            "per_step": dict(zip(map(str, common), rel_est.tolist(), strict=True)),
            "p50_ms_by_repetition": {
                str(c): {st: _rep_p50s(ps, (st, c)) for st in ("A", "B")} for c in common
            },
        },
    )


def _rep_p50s(ps: PointStats, label: tuple[Any, ...]) -> list[float]:
    """A point's p50 TTFT per repetition, in repetition order: a closed loop can settle
    into a second collision pattern for a whole repetition, and these show it."""
    runs = ps.point_runs(label).sort("rep")
    return [round(float(v), 3) for v in runs["ttft_p50"].cast(pl.Float64)]


def figure_table(sweeps: dict[str, tuple[u_work.Sweep, dict[str, Any]]]) -> pl.DataFrame:
    out = []
    for stack, (_, res) in sweeps.items():
        for st in res["steps"]:
            row = {
                "stack": stack,
                "users": st["users"],
                "point": st["point"],
                "n_reps": st["n_reps"],
                "p99_over_p50": st["p99_over_p50"],
            }
            for q in ("p50", "p95", "p99"):
                lo, hi = st[f"{q}_ci"] or (None, None)
                row.update({f"{q}_ms": st[f"{q}_ms"], f"{q}_ci_lo": lo, f"{q}_ci_hi": hi})
            row.update(
                u_work=res["u_work"],
                knee_users=res["knee"],
                is_u_work=st["users"] == res["u_work"],
                is_knee=st["users"] == res["knee"],
            )
            out.append(row)
    return pl.DataFrame(out, infer_schema_length=None)


def evaluate(ctx: Context) -> Verdict:
    used = ctx.used(hyp=ctx.hyp)
    present = set(used["stack"])
    planned = list(ctx.config.get("stacks", [])) or sorted(present)
    axis = axes.require(ctx.hyp, ctx.config, "concurrency")
    sweeps = {
        s: (sw := u_work.sweep(ctx.data, s, axis, ctx.hyp), u_work.result(sw))
        for s in planned
        if s in present
    }
    criteria = [knee_criterion(sw, res) for sw, res in sweeps.values()]
    criteria += [
        Criterion.missing(f"knee_{s}", "U_work knee", SOURCE_KNEE, f"no_usable_runs:{s}")
        for s in planned
        if s not in present
    ]
    notes = []
    u = {s: res["u_work"] for s, (_, res) in sweeps.items()}
    if {"A", "B"} <= set(u):
        criteria.append(parity_criterion(ctx, axis, u))
    else:
        notes.append("p50 parity needs stacks A and B; not evaluated")
    ctx.write_table("fig_latency_vs_concurrency.csv", figure_table(sweeps))
    keys = ("u_work", "knee", "knee_found", "reason", "collapse", "saturated_at", "failed_points")
    stack_info = {s: {k: res[k] for k in keys} for s, (_, res) in sweeps.items()}
    return verdict(ctx, criteria, ctx.gates(used), used, stacks=stack_info, notes=notes)
