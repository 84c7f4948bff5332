"""H9: re-hydrating session KV from NVMe beats recomputing it (modes B0, B1, B2).

Rule (docs/PLAN.md): replay TTFT per mode, paired repetitions (AB/BA order), mean
difference with 95 % CI; mechanism gate: B2 must show disk onboards (every run), B1 must
show none (a B1 run without the counter is unknown, not zero: inconclusive).

The analysed window is the replay phase. Per run: the mean replay TTFT. Repetition r
of all modes forms a pair (run one after another, in listed order on even r and reversed
on odd r); the unit is the repetition's paired difference B2 - B0. With at least two
repetitions of each order the effect is the mean over orders of the per-order mean
difference (balanced against order) with the pooled two-sample t-interval, and the order
effect (half the difference of the two orders' means) with a CI excluding 0 makes the
verdict inconclusive; with fewer (3 repetitions: 2 listed, 1 reversed) the effect is the
paired mean over all repetitions with its one-sample t-interval and the order effect is
reported as unknown. Supported when the CI lies below 0.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import polars as pl

from spark_harness.analysis import stats
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.evidence import Context, Stat, mechanism_gate, rows, run_sums, verdict
from spark_harness.analysis.verdict import INCONCLUSIVE, INF, INVALID, Criterion, Gate, Verdict

SOURCE = "docs/PLAN.md H9: replay TTFT per mode, paired repetitions, mean difference, 95 % CI"
MODES = ("B0", "B1", "B2")  # no offload, host tier only, host + disk


def _modes(ctx: Context, used: pl.DataFrame) -> dict[str, str]:
    """Mode -> stack name: by name where the stacks are called B0/B1/B2, else by order."""
    stacks = [s for s in ctx.config.get("stacks", []) if s in set(used["stack"])]
    stacks = stacks or sorted(set(used["stack"]))
    if set(MODES) <= set(stacks):
        return {m: m for m in MODES}
    return dict(zip(MODES, stacks, strict=False))


class Pairs:
    """Complete repetitions (every mode present): per repetition, each mode's mean replay
    TTFT; contrasts are paired differences, the repetition the unit."""

    def __init__(self, ctx: Context, used: pl.DataFrame, modes: dict[str, str]):
        self.modes = modes
        by_rep = used.group_by("rep").agg(pl.col("stack").n_unique().alias("n"))
        self.reps = sorted(by_rep.filter(pl.col("n") == len(modes))["rep"].to_list())
        self.order = np.array(["listed" if r % 2 == 0 else "reversed" for r in self.reps])
        run = {(st, rep): rid for st, rep, rid in used.select("stack", "rep", "run_id").iter_rows()}
        self.means = {
            m: np.array([ctx.data.ttft[run[(st, r)]].mean() for r in self.reps])
            for m, st in modes.items()
        }

    def difference(self, a: str, b: str) -> tuple[Stat, Stat]:
        """Mean difference a - b and the order effect, with CIs.

        With at least 2 repetitions of each order the effect is balanced over the orders
        (½·listed + ½·reversed) and the order effect is ½·(listed - reversed), both with
        the pooled two-sample t-interval; with fewer the orders cannot be balanced and the
        effect is the paired mean over all repetitions (one-sample t), order effect unknown.
        """
        d = self.means[a] - self.means[b]
        listed, reversed_ = d[self.order == "listed"], d[self.order == "reversed"]
        if min(len(listed), len(reversed_)) >= 2:
            effect = Stat.of(
                (listed.mean() + reversed_.mean()) / 2,
                stats.two_sample_replicates(listed, reversed_, 0.5, 0.5),
            )
            order = Stat.of(
                (listed.mean() - reversed_.mean()) / 2,
                stats.two_sample_replicates(listed, reversed_, 0.5, -0.5),
            )
            return effect, order
        paired = stats.mean_replicates(d) if len(d) else np.empty(0)
        return Stat.of(d.mean() if len(d) else np.nan, paired), Stat(None, None)


def _mechanism(used: pl.DataFrame, modes: dict[str, str]) -> list[Gate]:
    """B2 must show disk onboards (and offloads) in every run; B1 must show none in any.

    A B1 run without G3 counters is missing evidence, not zero: inconclusive, unless its
    stack declares tiers without G3 (``kv_tiers``: vLLM's host-only offloading exports no
    G3 series because it has no G3), where it onboards nothing from disk by
    construction. A counter that is there always decides.
    """
    g = mechanism_gate(used.filter(pl.col("stack") == modes["B2"]), "g3", "B2 runs")
    g.reasons = [r.replace("no_g3_onboards", "b2_no_disk_onboards") for r in g.reasons]
    b1 = used.filter(pl.col("stack") == modes["B1"])
    disk = run_sums(b1, ("g3_onboard_blocks",))
    without_g3 = [t is not None and "g3" not in t for t in b1["kv_tiers"].to_list()]
    per_run = [
        [*r, v, "counted" if v is not None else "declared without G3" if no_g3 else "unknown"]
        for r, v, no_g3 in zip(rows(b1), disk, without_g3, strict=True)
    ]
    counted = disk.drop_nulls()
    if any(v is not None and v > 0 for v in disk):
        passed, effect, reasons = False, INVALID, ["b1_disk_onboards"]
    elif any(r[-1] == "unknown" for r in per_run):
        passed, effect, reasons = False, INCONCLUSIVE, ["b1_disk_onboards_unknown"]
    else:
        passed, effect, reasons = True, INVALID, []
    b1_gate = Gate(
        "b1_no_disk",
        passed,
        effect,
        value=float(cast("float | None", counted.max()) or 0.0) if counted.len() else None,
        threshold=0.0,
        reasons=reasons,
        details={
            "per_run": per_run,
            "evidence": "the G3 onboard counter where exported; a run whose stack declares "
            "KV tiers without G3 (kv_tiers) has no disk to onboard from",
        },
    )
    return [g, b1_gate]


def evaluate(ctx: Context) -> Verdict:
    used = ctx.used(hyp=ctx.hyp).sort("stack", "rep")
    modes = _modes(ctx, used)
    gates = ctx.gates(used)
    if len(modes) < 3:
        c = Criterion.missing(
            "replay_ttft_b2_minus_b0", "mean replay TTFT B2 - B0", SOURCE, "modes_missing"
        )
        return verdict(ctx, [c], gates, used)
    pairs = Pairs(ctx, used, modes)
    gates.append(
        Gate(
            "pairs",
            len(pairs.reps) >= T.MIN_REPETITIONS,
            INCONCLUSIVE,
            value=len(pairs.reps),
            threshold=T.MIN_REPETITIONS,
            reasons=[] if len(pairs.reps) >= T.MIN_REPETITIONS else ["too_few_paired_repetitions"],
        )
    )
    gates += _mechanism(used, modes)
    criteria: list[Criterion] = []
    order_effect: dict[str, Any] = {}
    for a, b, role in (("B2", "B0", "rule"), ("B2", "B1", "info"), ("B1", "B0", "info")):
        eff, order = pairs.difference(a, b) if pairs.reps else (Stat(None, None),) * 2
        name = f"replay_ttft_{a.lower()}_minus_{b.lower()}"
        c = Criterion.judged(
            name,
            f"mean replay TTFT {a} - {b}, balanced over AB/BA orders",
            eff.value,
            eff.ci,
            threshold=0.0,
            op="<",
            source=SOURCE,
            supported=[(-INF, 0)],
            refuted=[(0, INF)],
            unit="ms",
            rows=rows(used.filter(pl.col("stack").is_in([modes[a], modes[b]]))),
            details={"order_effect": order.__dict__, "pairs": pairs.reps},
            role=role,
        )
        criteria.append(c)
        order_effect[name] = order
    main = order_effect["replay_ttft_b2_minus_b0"]
    if main.ci is None:
        gates.append(
            Gate(
                "order_effect", None, INCONCLUSIVE, details={"note": "needs both AB and BA orders"}
            )
        )
    else:
        clean = main.ci[0] <= 0 <= main.ci[1]
        gates.append(
            Gate(
                "order_effect",
                clean,
                INCONCLUSIVE,
                value=main.value,
                threshold=0.0,
                reasons=[] if clean else ["order_effect"],
                details={"ci": main.ci},
            )
        )
    table: list[dict[str, Any]] = [
        {
            "mode": m,
            "stack": st,
            "mean_replay_ttft_ms": float(pairs.means[m].mean()) if pairs.reps else None,
        }
        for m, st in modes.items()
    ]
    for row in table:
        reps = pairs.means[row["mode"]]
        ci = Stat.of(0.0, stats.mean_replicates(reps)).ci if len(reps) else None
        row["ci_lo"], row["ci_hi"] = ci or (None, None)
    ctx.write_table("fig_replay_ttft_by_mode.csv", pl.DataFrame(table, infer_schema_length=None))
    pair_rows = [
        {"rep": r, "order": o, **{m: float(pairs.means[m][i]) for m in modes}}
        for i, (r, o) in enumerate(zip(pairs.reps, pairs.order, strict=True))
    ]
    ctx.write_table("fig_replay_pairs.csv", pl.DataFrame(pair_rows, infer_schema_length=None))
    return verdict(ctx, criteria, gates, used, stacks={m: {"stack": s} for m, s in modes.items()})
