"""H6: larger G1+G2 or a better eviction policy shifts the knee (stack B).

Rule (docs/PLAN.md): knee position and hit ratio per configuration. A configuration is
one combination of the capacity axes (role ``tier_capacity``, e.g. ``server.sim.g2_blocks``
or ``server.params.cpu_cache_gb``; their sum orders them) and the eviction policy axis
(role ``eviction_policy``; a plan without one, like KVBM's, has the baseline policy).
Two alternatives, one of which must hold (role ``any``):

- capacity: under every policy, the largest capacity shifts the knee against the
  smallest;
- policy: under some capacity, some policy shifts it against the baseline (LRU).

An alternative whose axis the plan does not sweep (the demo and the Spark plan have no
eviction-policy axis) is reported as ``info`` (``no_policy_axis_in_plan``): the verdict
then rests on the other alternative alone.

Where the points also sweep a load axis (context or users), each configuration's knee
is located on it (storage knee, else the U_work knee) and a shift is a later knee.
Without a load axis (one load per configuration, as in the demo plan) the knee cannot
be located; a shifted knee then shows as a lower tail at that load, and a shift counts
when the tail improves by more than MATERIAL_P99_CHANGE (CI). The tail is p99, or p95
where a window holds under 200 requests (``criteria.TAIL``, which says why).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from spark_harness.analysis import axes, knee, stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import TAIL, complete, per_point, resolve
from spark_harness.analysis.evidence import Context, PointStats, Stat, mechanism_gate, rows, verdict
from spark_harness.analysis.runs import with_tier_shares
from spark_harness.analysis.verdict import (
    INCONCLUSIVE,
    INF,
    NOT_SUPPORTED,
    SUPPORTED,
    Criterion,
    Verdict,
)

SOURCE = "docs/PLAN.md H6: knee position and hit ratio per configuration"
LOAD_ROLES = ("context", "concurrency")
BASELINE_POLICY = "lru"


def _axes(ctx: Context) -> tuple[list[str], str | None, str | None]:
    """Capacity axes, the policy axis and a load axis, found by their roles."""
    cap = axes.keys(ctx.hyp, ctx.config, "tier_capacity")
    pol = axes.find(ctx.hyp, ctx.config, "eviction_policy")
    if not cap and pol is None:
        axes.require(ctx.hyp, ctx.config, "tier_capacity")  # raises, naming the role
    load = next(
        (k for r in LOAD_ROLES if (k := axes.find(ctx.hyp, ctx.config, r)) is not None), None
    )
    return cap, pol, load


def _configs(frame: pl.DataFrame, cap: list[str], pol: str | None) -> pl.DataFrame:
    capacity = pl.sum_horizontal(cap) if cap else pl.lit(0)
    policy = pl.col(pol) if pol else pl.lit(BASELINE_POLICY)
    return frame.with_columns(capacity.alias("capacity"), policy.alias("policy"))


def _fixed_load(ps: PointStats, used: pl.DataFrame) -> tuple[dict, dict]:
    """Tail improvement per alternative at one load: {(policy|capacity): Stat}."""
    est, rep = per_point(ps, TAIL)
    where = {
        (r["capacity"], r["policy"]): ps.index((r["hyp"], r["stack"], r["point"]))
        for r in used.iter_rows(named=True)
    }
    caps = sorted({c for c, _ in where})
    pols = sorted({p for _, p in where})

    def gain(a: int, b: int) -> tuple[float, np.ndarray]:
        return 1 - est[b] / est[a], 1 - rep[:, b] / rep[:, a]

    cap_gain = {
        p: gain(where[(caps[0], p)], where[(caps[-1], p)])
        for p in pols
        if (caps[0], p) in where and (caps[-1], p) in where and len(caps) > 1
    }
    base = BASELINE_POLICY if BASELINE_POLICY in pols else pols[0]
    pol_gain = {
        f"{p}@{c}": gain(where[(c, base)], where[(c, p)])
        for c in caps
        for p in pols
        if p != base and (c, base) in where and (c, p) in where
    }
    return cap_gain, pol_gain


def _gain_criterion(
    name: str, what: str, gains: dict[str, tuple[float, np.ndarray]], largest: bool
) -> Criterion:
    """The largest (or smallest) of several gains, its CI from their simultaneous CIs
    (:func:`~..stats.max_signed`): the replicates' own maximum of 4 policy contrasts,
    each truly 8 % (threshold 10 %), supported a policy in 10 of 200 experiments."""
    if not gains:
        return Criterion.missing(name, what, SOURCE, f"no_{name}_contrast", role="any")
    keys = list(gains)
    est = np.array([gains[k][0] for k in keys])
    rep = np.stack([gains[k][1] for k in keys], axis=1)
    sign = 1.0 if largest else -1.0  # the smallest is minus the largest of the negated
    value, ci = stats.max_signed(sign * est, sign * rep)
    if ci is not None:
        lo, hi = sorted((sign * ci[0], sign * ci[1]))
    s = Stat(sign * value, None if ci is None else (lo, hi))
    return Criterion.judged(
        name,
        what,
        s.value,
        s.ci,
        threshold=T.MATERIAL_P99_CHANGE,
        op=">",
        source=SOURCE,
        supported=[(T.MATERIAL_P99_CHANGE, INF)],
        refuted=[(-INF, T.MATERIAL_P99_CHANGE)],
        unit="share",
        role="any",
        details={"per_contrast": dict(zip(keys, est.tolist(), strict=True))},
    )


def _knee_at(ps: PointStats, frame: pl.DataFrame, load: str) -> float:
    """Load value at one configuration's knee; inf when the sweep shows none."""
    sub = frame.sort(load)
    labels = list(
        dict.fromkeys((r["hyp"], r["stack"], r["point"]) for r in sub.iter_rows(named=True))
    )
    idx = [ps.index(lab) for lab in labels]
    values = [ps.point_runs(lab)[load][0] for lab in labels]
    if complete(ps, "g3_fetch_share_p95"):
        k = knee.storage_knee(list(per_point(ps, "g3_fetch_share_p95")[0][idx]))
    else:
        ratio = per_point(ps, "p99")[0][idx] / per_point(ps, "p50")[0][idx]
        k = knee.queue_knee(list(ratio))
    return math.inf if k is None else float(values[k])


def _knee_shift(name: str, what: str, pairs: dict[str, tuple[float, float]]) -> Criterion:
    """Knee positions (point estimates): later knee = shift; all later / none later."""
    if not pairs:
        return Criterion.missing(name, what, SOURCE, f"no_{name}_contrast", role="any")
    shifted = {k: b > a for k, (a, b) in pairs.items()}
    unknown = [k for k, (a, b) in pairs.items() if math.isinf(a) and math.isinf(b)]
    if unknown:
        status, reasons = INCONCLUSIVE, [f"no_knee_in_sweep:{','.join(unknown)}"]
    elif all(shifted.values()):
        status, reasons = SUPPORTED, []
    elif not any(shifted.values()):
        status, reasons = NOT_SUPPORTED, []
    else:
        status, reasons = INCONCLUSIVE, ["knee_shift_mixed"]
    return Criterion(
        name=name,
        statistic=what,
        value=float(sum(shifted.values())),
        ci=None,
        threshold=None,
        op=">",
        source=SOURCE,
        status=status,
        reasons=[*reasons, "knee_positions_without_ci"],
        unit="configurations",
        role="any",
        details={"knees": {k: list(v) for k, v in pairs.items()}},
    )


def _with_load_axis(
    ps: PointStats, used: pl.DataFrame, load: str
) -> tuple[list[Criterion], dict[tuple[Any, Any], float]]:
    knees = {
        (c, p): _knee_at(ps, g, load)
        for (c, p), g in used.group_by("capacity", "policy", maintain_order=True)
    }
    caps, pols = sorted({c for c, _ in knees}), sorted({p for _, p in knees})
    base = BASELINE_POLICY if BASELINE_POLICY in pols else pols[0]
    cap_pairs = {
        p: (knees[(caps[0], p)], knees[(caps[-1], p)])
        for p in pols
        if len(caps) > 1 and (caps[0], p) in knees and (caps[-1], p) in knees
    }
    pol_pairs = {
        f"{p}@{c}": (knees[(c, base)], knees[(c, p)])
        for c in caps
        for p in pols
        if p != base and (c, base) in knees and (c, p) in knees
    }
    return [
        _knee_shift(
            "capacity_shifts_knee",
            "policies whose knee moves later at the largest capacity",
            cap_pairs,
        ),
        _knee_shift(
            "policy_shifts_knee", f"(capacity, policy) whose knee is later than {base}'s", pol_pairs
        ),
    ], knees


def config_table(ps: PointStats, used: pl.DataFrame, knees: dict) -> pl.DataFrame:
    """Per point: configuration, TTFT percentiles (CI), hit ratios and the knee (if any)."""
    out = []
    for lab in ps.labels:
        r = ps.point_runs(lab)
        i = ps.index(lab)
        row: dict[str, Any] = {
            "point": lab[2],
            "capacity": r["capacity"][0],
            "policy": r["policy"][0],
            "n_reps": r.height,
        }
        for q in ("p50", "p95", "p99"):
            est, rep = per_point(ps, q)
            s = Stat.of(est[i], rep[:, i])
            row[f"ttft_{q}_ms"] = s.value
            row[f"ttft_{q}_ci_lo"], row[f"ttft_{q}_ci_hi"] = s.ci or (None, None)
        for c in ("share_miss", "g3_hit_share"):
            row[c] = float(per_point(ps, c)[0][i]) if c in used.columns else None
        row["hit_ratio"] = None if row["share_miss"] is None else 1 - row["share_miss"]
        k = knees.get((row["capacity"], row["policy"]))
        row["knee"] = None if k is None or math.isinf(k) else k
        out.append(row)
    return pl.DataFrame(out, infer_schema_length=None)


def evaluate(ctx: Context) -> Verdict:
    used = ctx.used(hyp=ctx.hyp)
    cap, pol, load = _axes(ctx)
    used = with_tier_shares(_configs(used, cap, pol)).sort("capacity", "policy", "rep")
    gates = ctx.gates(used)
    ps = PointStats(ctx.data, used)
    knees: dict[tuple[Any, Any], float] = {}
    if load is not None:
        criteria, knees = _with_load_axis(ps, used, load)
    else:
        cap_gain, pol_gain = _fixed_load(ps, used)
        tail = resolve(ps, TAIL)
        criteria = [
            _gain_criterion(
                "capacity_lowers_p99",
                f"min over policies of the {tail} gain of the largest over the smallest capacity",
                cap_gain,
                largest=False,
            ),
            _gain_criterion(
                "policy_lowers_p99",
                f"max over capacities and policies of the {tail} gain against {BASELINE_POLICY}",
                pol_gain,
                largest=True,
            ),
        ]
    for c in criteria:
        c.rows = rows(used)
    untested = {"capacity": not cap, "policy": pol is None}
    for c in criteria:
        kind = c.name.split("_", 1)[0]
        if untested[kind] and c.status == INCONCLUSIVE:
            # the plan does not sweep this alternative (KVBM has no eviction policy): it
            # is not undecided, it is not tested, and cannot keep the other from deciding
            c.role, c.reasons = "info", [f"no_{kind}_axis_in_plan"]
    ctx.write_table("fig_knee_vs_capacity.csv", config_table(ps, used, knees))
    smallest = used.filter(pl.col("capacity") == used["capacity"].min())
    gates.append(mechanism_gate(smallest, "any", "runs at the smallest capacity"))
    notes = [] if load else ["no load axis: knee shift judged by p99 at the fixed load"]
    return verdict(ctx, criteria, gates, used, notes=notes)
