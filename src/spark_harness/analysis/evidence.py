"""What every evaluator shares: its context, per-point statistics, and the quality gates.

An evaluator turns :class:`Context` (its hypothesis, plan entry and :class:`~.runs.Runs`)
into a :class:`~.verdict.Verdict`. Per-point numbers come from :class:`PointStats`, which
keeps the replicates (the repetition is the unit, :class:`~.stats.Resampler`) so any
derived statistic (a ratio, a slope, a difference) gets its CI from the same draws.
:func:`standard_gates` applies the quality gates of ``docs/PLAN.md`` to the runs an
evaluator used.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl

from spark_harness.analysis import thresholds as T
from spark_harness.analysis.runs import QUANTILES, Runs
from spark_harness.analysis.stats import Resampler, ci
from spark_harness.analysis.verdict import (
    INCONCLUSIVE,
    INVALID,
    NOT_SUPPORTED,
    SUPPORTED,
    Criterion,
    Gate,
    Row,
    Verdict,
)
from spark_harness.files import atomic_writer

POINT_KEYS = ("hyp", "stack", "point")

#: Run metrics averaged per point in ``summary.csv`` (besides TTFT percentiles).
MEAN_COLUMNS = (
    "window_s",
    "warmup_s",
    "ttft_mean",
    "throughput_rps",
    "error_share",
    "aligned_share",
    "iowait_pct",
    "read_await_ms",
    "read_iops",
    "read_kbps",
    "read_bytes",
    "idle_iowait_pct",
    "idle_read_await_ms",
    "idle_read_iops",
    "idle_read_kbps",
    "mem_available_bytes",
    "idle_mem_available_bytes",
    "kv_g1_usage",
    "kv_waiting",
    "g3_onboard_blocks",
    "g2_onboard_blocks",
    "offload_g1_g2_blocks",
    "offload_g2_g3_blocks",
    "offload_g1_g3_blocks",
    "server_read_bytes",
    "g3_fetch_p95_ms",
    "g3_fetch_share_p95",
    "working_set_tokens",
    "cached_tokens",
    "prompt_tokens",
    "sim_step_overrun",
)
#: Why a rule reports p95 instead of p99.
TAIL_P95_REASON = f"tail_p95_fewer_than_{T.TAIL_P99_MIN_REQUESTS}_requests"
SUM_COLUMNS = ("n_window", "n_window_ok", "n_window_errors", "n_window_rejected")


@dataclass(frozen=True)
class Stat:
    """A point estimate with its CI (None: no spread to judge, e.g. one repetition)."""

    value: float | None
    ci: tuple[float, float] | None

    @classmethod
    def of(cls, estimate: float, replicates: np.ndarray) -> Stat:
        v = float(estimate)
        return cls(None if math.isnan(v) else v, ci(replicates))


def tail_quantile(runs: pl.DataFrame) -> tuple[str, list[str]]:
    """'p99' when every run has ≥ TAIL_P99_MIN_REQUESTS ok requests in its analysed
    (steady) window, else
    'p95' and the reason (docs/PLAN.md: "otherwise report p95 and say so")."""
    if runs.height and cast(int, runs["n_steady_ok"].min()) >= T.TAIL_P99_MIN_REQUESTS:
        return "p99", []
    return "p95", [TAIL_P95_REASON]


def rows(frame: pl.DataFrame) -> list[Row]:
    """[hyp, stack, point, rep] of every run in ``frame``: the rows a number came from."""
    return [list(r) for r in frame.select("hyp", "stack", "point", "rep").iter_rows()]


@dataclass
class Context:
    """One hypothesis to evaluate: its id, plan entry, evidence and output folder."""

    hyp: str
    config: Mapping[str, Any]
    data: Runs
    out_dir: Path
    tables: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return str(self.config.get("title", self.hyp))

    def used(self, hyp: str | None = None, stack: str | None = None) -> pl.DataFrame:
        """Usable runs (not excluded at ingest), optionally of one source."""
        f = self.data.runs
        if hyp is not None:
            f = f.filter(pl.col("hyp") == hyp)
        if stack is not None:
            f = f.filter(pl.col("stack") == stack)
        return f

    @functools.cached_property
    def summary(self) -> pl.DataFrame:
        """``summary.csv``: every point of the sources, computed once."""
        return point_table(self.data, self.data.runs)

    def gates(self, used: pl.DataFrame) -> list[Gate]:
        """The standard quality gates over the runs used, their points, and every point
        of the sources that has no usable run."""
        keys = used.select(POINT_KEYS).unique()
        table = pl.concat(
            [
                self.summary.join(keys, on=list(POINT_KEYS), how="semi"),
                self.summary.filter(pl.col("n_reps") == 0),
            ]
        )
        return standard_gates(self.data, used, table)

    def write_table(self, name: str, frame: pl.DataFrame) -> None:
        """Write a tidy CSV a figure will draw from; the verdict lists it."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        flat = frame.with_columns(
            pl.col(c).cast(pl.List(pl.String)).list.join(";")
            for c, t in frame.schema.items()
            if isinstance(t, pl.List)
        )
        with atomic_writer(self.out_dir / name) as fh:
            flat.write_csv(fh)
        self.tables.append(name)

    def axis_values(self, key: str, present: Iterable[Any]) -> list[Any]:
        """Values of a sweep axis in the plan's order (else sorted), those present only."""
        have = list(dict.fromkeys(present))
        for ax in self.config.get("sweep", []) or []:
            if ax.get("key") == key:
                return [v for v in ax["values"] if v in have] + [
                    v for v in have if v not in ax["values"]
                ]
        return sorted(have)


class PointStats:
    """TTFT percentiles per point (mean over repetitions) with their replicates."""

    def __init__(self, data: Runs, runs: pl.DataFrame, by: Sequence[str] = POINT_KEYS):
        self.runs = runs
        self.by = list(by)
        keys: list[Hashable] = [tuple(r) for r in runs.select(self.by).iter_rows()]
        self.res = Resampler(keys)
        self.labels: list[tuple[Any, ...]] = [tuple(k) for k in self.res.labels]  # type: ignore[arg-type]
        samples = [data.ttft.get(r, np.empty(0)) for r in runs["run_id"]]
        self._slots = self.res.percentiles(samples, list(QUANTILES.values()))
        self._members = [np.array([k == lab for k in keys]) for lab in self.labels]

    def index(self, label: tuple[Any, ...]) -> int:
        return self.labels.index(label)

    def slots(self, q: str) -> np.ndarray:
        """Replicates of the per-run percentile q ('p50', 'p95', 'p99'): (RESAMPLES, n_runs)."""
        return self._slots[..., list(QUANTILES).index(q)]

    def fixed_slots(self, column: str) -> np.ndarray:
        """Replicates of a per-run column: (RESAMPLES, n_runs)."""
        return self.res.fixed(self.runs[column].cast(pl.Float64).fill_null(math.nan).to_numpy())

    def replicates(self, q: str) -> np.ndarray:
        """Replicates of the per-point percentile q: (RESAMPLES, n_points)."""
        return self.res.by_stratum(self.slots(q))

    def fixed_replicates(self, column: str) -> np.ndarray:
        return self.res.by_stratum(self.fixed_slots(column))

    def estimate(self, column: str) -> np.ndarray:
        """Per-point mean over repetitions of a run column (e.g. 'ttft_p99'): (n_points,)."""
        v = self.runs[column].cast(pl.Float64).fill_null(math.nan).to_numpy()
        return np.array([v[m].mean() if m.any() else math.nan for m in self._members])

    def members(self, label: tuple[Any, ...]) -> np.ndarray:
        """Which runs (rows of ``runs``) belong to the point ``label``."""
        return self._members[self.index(label)]

    def tail(self) -> tuple[str, list[str]]:
        """The tail percentile these points support: 'p99' when every run completed at
        least TAIL_P99_MIN_REQUESTS ok requests in its analysed window, else 'p95' with
        its reason."""
        return tail_quantile(self.runs)

    def point_runs(self, label: tuple[Any, ...]) -> pl.DataFrame:
        return self.runs.filter(pl.Series(self._members[self.index(label)]))


def point_table(data: Runs, runs: pl.DataFrame, ps: PointStats | None = None) -> pl.DataFrame:
    """``summary.csv``: one row per (hyp, stack, point), failed points included.

    TTFT percentiles are means over repetitions with t CIs; other metrics are means
    (counts are sums); ``cov_p99`` is the CoV of the per-run p99 across repetitions.
    """
    ps = ps or PointStats(data, runs)
    axes = [c for c in data.axis_columns() if c in runs.columns]
    present = [c for c in MEAN_COLUMNS if c in runs.columns]
    agg = runs.group_by(list(POINT_KEYS), maintain_order=True).agg(
        pl.len().alias("n_reps"),
        pl.col("rep").sort().cast(pl.String).str.join(";").alias("reps"),
        pl.col("marked").any().alias("marked"),
        *[pl.col(a).first() for a in axes],
        pl.col("n_steady_ok").min().alias("min_steady_ok"),
        pl.col("steady_reason").is_not_null().sum().alias("no_steady_state_reps"),
        pl.when(pl.col("n_steady_ok").min() >= T.TAIL_P99_MIN_REQUESTS)
        .then(pl.lit("p99"))
        .otherwise(pl.lit("p95"))
        .alias("tail"),
        *[pl.col(c).sum() for c in SUM_COLUMNS],
        *[pl.col(c).mean() for c in present],
        # sample SD over mean; null for a single repetition
        *[
            (pl.col(f"ttft_{q}").std(ddof=1) / pl.col(f"ttft_{q}").mean()).alias(f"cov_{q}")
            for q in ("p95", "p99")
        ],
    )
    cols: dict[str, list[Any]] = {
        k: [lab[i] for lab in ps.labels] for i, k in enumerate(POINT_KEYS)
    }
    for q in QUANTILES:
        est, rep = ps.estimate(f"ttft_{q}"), ps.replicates(q)
        st = [Stat.of(est[i], rep[:, i]) for i in range(len(ps.labels))]
        cols[f"ttft_{q}_ms"] = [x.value for x in st]
        cols[f"ttft_{q}_ci_lo"] = [x.ci[0] if x.ci else None for x in st]
        cols[f"ttft_{q}_ci_hi"] = [x.ci[1] if x.ci else None for x in st]
    dtypes: dict[str, pl.DataType | type[pl.DataType]] = {
        **{k: runs.schema[k] for k in POINT_KEYS},
        **{c: pl.Float64 for c in list(cols)[3:]},
    }
    pct = pl.DataFrame(cols, schema_overrides=dtypes)
    table = agg.join(pct, on=list(POINT_KEYS), how="left")
    failed = _failed_points(data, runs)
    if failed.height:
        table = pl.concat([table, failed], how="diagonal_relaxed")
    first = [*POINT_KEYS, "n_reps", "reps", "marked", *axes, *list(cols)[3:], "cov_p99", "tail"]
    rest = [c for c in table.columns if c not in first]
    return table.select(*first, *rest).sort(*POINT_KEYS[:2], *axes, "point", nulls_last=True)


def _failed_points(data: Runs, runs: pl.DataFrame) -> pl.DataFrame:
    """Points of the sources that have no usable run at all (every attempt failed)."""
    lost = data.points.join(runs.select(POINT_KEYS).unique(), on=list(POINT_KEYS), how="anti")
    if lost.height == 0:
        return pl.DataFrame()
    axes = [c for c in data.axis_columns() if c in lost.columns]
    return lost.group_by(list(POINT_KEYS), maintain_order=True).agg(
        pl.lit(0).alias("n_reps"),
        *[pl.col(a).first() for a in axes],
        pl.col("exclude_reason").unique().sort().str.join(";").alias("failed_reasons"),
    )


def tail_report(table: pl.DataFrame) -> Gate:
    """Points whose window is too short for p99 are reported; their rules use p95."""
    short = table.filter(pl.col("tail") == "p95")
    return Gate(
        "tail",
        short.height == 0,
        "report",
        value=cast("float | None", table["min_steady_ok"].min()) if table.height else None,
        threshold=T.TAIL_P99_MIN_REQUESTS,
        reasons=[TAIL_P95_REASON] if short.height else [],
        details={"points": [f"{h}/{s}/{p}" for h, s, p in short.select(POINT_KEYS).iter_rows()]},
    )


# ------------------------------------------------------------------------ gates
def alignment_gate(runs: pl.DataFrame) -> Gate:
    """≥ 95 % of window requests with a telemetry sample within one cadence (per run)."""
    bad = runs.filter(pl.col("aligned_share") < T.ALIGNMENT_SHARE)
    worst = cast("float | None", runs["aligned_share"].min()) if runs.height else None
    return Gate(
        "alignment",
        bad.height == 0,
        INVALID,
        value=worst,
        threshold=T.ALIGNMENT_SHARE,
        reasons=[] if bad.height == 0 else ["alignment_below_95pct"],
        details={
            "failing_runs": [[*r, s] for r, s in zip(rows(bad), bad["aligned_share"], strict=True)]
        },
    )


def repetitions_gate(table: pl.DataFrame) -> Gate:
    """Every point has at least MIN_REPETITIONS usable repetitions."""
    few = table.filter(pl.col("n_reps") < T.MIN_REPETITIONS)
    reasons = []
    if few.height:
        reasons.append(f"fewer_than_{T.MIN_REPETITIONS}_repetitions")
    if few.filter(pl.col("n_reps") == 0).height:
        reasons.append("point_without_usable_runs")
    return Gate(
        "repetitions",
        few.height == 0,
        INCONCLUSIVE,
        value=cast("float | None", table["n_reps"].min()) if table.height else 0,
        threshold=T.MIN_REPETITIONS,
        reasons=reasons,
        details={
            "points": [
                f"{h}/{s}/{p}: {n}" for h, s, p, n in few.select(*POINT_KEYS, "n_reps").iter_rows()
            ]
        },
    )


def cov_gate(table: pl.DataFrame) -> Gate:
    """CoV across repetitions of the tail each point reports below 10 % at every point:
    p99, or p95 where a window is too short for p99 (``tail``; docs/PLAN.md)."""
    tail = pl.col("tail") if "tail" in table.columns else pl.lit("p99")
    cov = pl.when(tail == "p95").then(pl.col("cov_p95")) if "cov_p95" in table.columns else None
    table = table.with_columns(
        tail.fill_null("p99").alias("_tail"),
        (pl.col("cov_p99") if cov is None else cov.otherwise(pl.col("cov_p99"))).alias("_cov"),
    )
    t = table.filter(pl.col("_cov").is_not_null() & pl.col("_cov").is_not_nan())
    if t.height == 0:
        return Gate(
            "cov_p99",
            None,
            INCONCLUSIVE,
            threshold=T.COV_P99_MAX,
            details={"note": "fewer than two repetitions everywhere"},
        )
    bad = t.filter(pl.col("_cov") >= T.COV_P99_MAX)
    return Gate(
        "cov_p99",
        bad.height == 0,
        INCONCLUSIVE,
        value=cast("float | None", t["_cov"].max()),
        threshold=T.COV_P99_MAX,
        reasons=[f"cov_{q}_over_10pct" for q in sorted(set(bad["_tail"]), reverse=True)],
        details={
            "points": {
                f"{h}/{s}/{p}": {"tail": q, "cov": c}
                for h, s, p, q, c in bad.select(*POINT_KEYS, "_tail", "_cov").iter_rows()
            }
        },
    )


def sim_clock_gate(runs: pl.DataFrame) -> Gate:
    """Simulated runs whose engine kept its modeled clock (no verdict on a starved host)."""
    if "sim_step_overrun" not in runs.columns or runs["sim_step_overrun"].drop_nulls().len() == 0:
        return Gate("sim_clock", None, INVALID, details={"note": "no simulated runs"})
    bad = runs.filter(pl.col("sim_step_overrun") > T.SIM_STEP_OVERRUN_MAX)
    return Gate(
        "sim_clock",
        bad.height == 0,
        INVALID,
        value=cast("float | None", runs["sim_step_overrun"].max()),
        threshold=T.SIM_STEP_OVERRUN_MAX,
        reasons=[] if bad.height == 0 else ["sim_behind_model"],
        details={
            "failing_runs": [
                [*r, s] for r, s in zip(rows(bad), bad["sim_step_overrun"], strict=True)
            ]
        },
    )


def errors_report(runs: pl.DataFrame) -> Gate:
    """Errors and rejections are reported; a run with > 1 % errors is marked."""
    marked = runs.filter(pl.col("marked") | (pl.col("error_share") > T.MARK_ERROR_SHARE))
    return Gate(
        "errors",
        marked.height == 0,
        "report",
        value=cast("float | None", runs["error_share"].max()),
        threshold=T.MARK_ERROR_SHARE,
        reasons=[] if marked.height == 0 else ["points_marked_errors_over_1pct"],
        details={
            "marked_runs": rows(marked),
            "errors": int(runs["n_window_errors"].sum()),
            "rejected": int(runs["n_window_rejected"].sum()),
        },
    )


def failed_report(data: Runs) -> Gate:
    """Runs of the sources excluded at ingest: reported with their reason, never dropped."""
    excl = data.points.filter(pl.col("excluded"))
    return Gate(
        "failed_runs",
        excl.height == 0,
        "report",
        value=excl.height,
        reasons=[] if excl.height == 0 else ["failed_runs_excluded"],
        details={
            "runs": [
                {"run": r, "reason": why}
                for r, why in zip(rows(excl), excl["exclude_reason"], strict=True)
            ]
        },
    )


def standard_gates(data: Runs, runs: pl.DataFrame, table: pl.DataFrame) -> list[Gate]:
    """The quality gates of docs/PLAN.md for the runs and points an evaluator used."""
    return [
        alignment_gate(runs),
        repetitions_gate(table),
        cov_gate(table),
        tail_report(table),
        sim_clock_gate(runs),
        errors_report(runs),
        failed_report(data),
    ]


#: Each tier's traffic counters, (offloads into it, onboards out of it), one per route:
#: a server reports the routes it has (KVBM and the simulator also offload G1 -> G3
#: directly; vLLM goes through G2), so one reported route is enough.
TIER_ROUTES = {
    "g2": (("offload_g1_g2_blocks",), ("g2_onboard_blocks",)),
    "g3": (("offload_g2_g3_blocks", "offload_g1_g3_blocks"), ("g3_onboard_blocks",)),
}
#: The tiers a mechanism names: ``g3`` (NVMe) or ``any`` tier below G1.
TIERS_OF = {"g3": ("g3",), "any": ("g2", "g3")}
OFFLOADS, ONBOARDS = 0, 1


def run_sums(runs: pl.DataFrame, columns: Sequence[str]) -> pl.Series:
    """Each run's sum of the columns it recorded; null where it recorded none of them."""
    present = [c for c in columns if c in runs.columns]
    if not present:
        return pl.Series([None] * runs.height, dtype=pl.Float64)
    return runs.select(
        pl.when(pl.any_horizontal([pl.col(c).is_not_null() for c in present]))
        .then(pl.sum_horizontal([pl.col(c).cast(pl.Float64) for c in present]))
        .alias("v")
    )["v"]


def _lacks(runs: pl.DataFrame, tier: str) -> pl.Expr:
    """Whether a run's stack has no such tier: its ``kv_tiers`` leave it out, or, where
    it declares none, for G3: it has no G3 directory."""
    if "kv_tiers" in runs.columns and runs.schema["kv_tiers"] != pl.Null:
        declared = pl.col("kv_tiers").is_not_null()
        lacks = declared & ~pl.col("kv_tiers").list.contains(tier)
    else:
        declared, lacks = pl.lit(False), pl.lit(False)
    if tier == "g3" and "g3_dir" in runs.columns:
        lacks = lacks | (~declared & pl.col("g3_dir").is_null())
    return lacks


def _tier(runs: pl.DataFrame, tier: str, direction: int) -> pl.Expr:
    """One tier's traffic per run: its reported routes' sum; where none is reported, 0 if
    the run's stack has no such tier (:func:`_lacks`), else null."""
    cols = [c for c in TIER_ROUTES[tier][direction] if c in runs.columns]
    value = (
        pl.when(pl.any_horizontal([pl.col(c).is_not_null() for c in cols])).then(
            pl.sum_horizontal([pl.col(c).cast(pl.Float64) for c in cols])
        )
        if cols
        else pl.lit(None, pl.Float64)
    )
    # a counter the run did report always counts, whatever the stack declares
    return pl.when(value.is_null() & _lacks(runs, tier)).then(pl.lit(0.0)).otherwise(value)


def tier_traffic(runs: pl.DataFrame, tiers: str, direction: int) -> pl.Series:
    """Each run's blocks moved into (``OFFLOADS``) or out of (``ONBOARDS``) the tiers
    ``tiers`` names; null where a tier the run has reported none of its routes: missing
    evidence, never zero, even when another tier's counters are there."""
    parts = [_tier(runs, t, direction) for t in TIERS_OF[tiers]]
    total = parts[0]
    for part in parts[1:]:
        total = total + part  # a null part makes the total null
    return runs.select(total.cast(pl.Float64).alias("v"))["v"]


def engaged(runs: pl.DataFrame) -> pl.DataFrame:
    """Runs whose window shows G3 onboards (NVMe engaged). Where none does and some runs
    have no such counter, whether NVMe was engaged is unknown, not "no": then every run,
    so the verdict waits for the counters (the mechanism gate on them is inconclusive,
    ``no_kv_tier_telemetry``) instead of calling a traffic never measured none (invalid).
    A run without the counter beside engaged ones is left out
    (:func:`not_engaged_reasons` says why)."""
    if "g3_onboard_blocks" not in runs.columns:
        return runs
    out = runs.filter(pl.col("g3_onboard_blocks").fill_null(0) > 0)
    return runs if not out.height and runs["g3_onboard_blocks"].null_count() else out


def not_engaged_reasons(runs: pl.DataFrame) -> dict[str, str]:
    """Why each run that :func:`engaged` leaves out is left out: its counters showed no
    G3 onboards (``nvme_not_engaged``), or it has no such counter
    (``no_kv_tier_telemetry``: missing evidence, never a zero)."""
    blocks = (
        runs["g3_onboard_blocks"]
        if "g3_onboard_blocks" in runs.columns
        else pl.Series([None] * runs.height, dtype=pl.Float64)
    )
    return {
        run_id: "no_kv_tier_telemetry" if n is None else "nvme_not_engaged"
        for run_id, n in zip(runs["run_id"], blocks, strict=True)
        if n is None or n <= 0
    }


def mechanism_gate(runs: pl.DataFrame, tiers: str, scope: str) -> Gate:
    """Tier effects need their mechanism in every run used: offloads and onboards > 0 in
    that run's own window (a sum over runs would let one busy run cover idle ones).

    ``tiers`` is ``g3`` (blocks written to and read back from NVMe) or ``any`` (any tier
    below G1). A run without the counters is missing evidence, not zero: the gate is then
    inconclusive (``no_kv_tier_telemetry``); a run whose counters show no traffic makes it
    invalid. ``scope`` says which runs were checked, for the report.
    """
    off, on = tier_traffic(runs, tiers, OFFLOADS), tier_traffic(runs, tiers, ONBOARDS)
    tag = "g3" if tiers == "g3" else "tier"
    unknown = runs.filter((off.is_null() | on.is_null()).to_numpy())
    reasons = []
    if runs.height == 0:
        reasons.append("mechanism_no_runs")
    elif unknown.height:
        reasons.append("no_kv_tier_telemetry")
    else:
        if (off <= 0).any():
            reasons.append(f"no_{tag}_offloads")
        if (on <= 0).any():
            reasons.append(f"no_{tag}_onboards")
    failing = [
        [*r, o, n]
        for r, o, n in zip(rows(runs), off, on, strict=True)
        if o is None or n is None or o <= 0 or n <= 0
    ]
    return Gate(
        "mechanism",
        not reasons,
        INCONCLUSIVE if reasons == ["no_kv_tier_telemetry"] else INVALID,
        value=None if on.null_count() else float(cast(float, on.min())) if runs.height else None,
        threshold=0.0,
        reasons=reasons,
        details={
            "scope": scope,
            "per_run": True,
            "statistic": "min over runs of the onboards in the run's window",
            "failing_runs": failing,
            "offload_blocks": off.to_list(),
            "onboard_blocks": on.to_list(),
            "runs": rows(runs),
        },
    )


#: The server's own device read bytes over a run's window (:func:`server_reads`).
SERVER_READS = "server_own_read_bytes"


def server_reads(frame: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """Add each run's own device reads (``SERVER_READS``), apart from the perturbation's.

    The per-process counter (``server_read_bytes``) where every run recorded it, method
    ``server_read_bytes``; otherwise the watched devices' reads over the window minus
    the idle rate and minus what the perturbation (fio) reported reading itself, method
    ``device_minus_perturbation``. Neither known: the column is null, method None.
    """
    if "server_read_bytes" in frame.columns and frame["server_read_bytes"].null_count() == 0:
        return frame.with_columns(pl.col("server_read_bytes").alias(SERVER_READS)), (
            "server_read_bytes"
        )
    needed = {"perturbation_read_bps", "read_bytes", "idle_read_kbps"}
    if needed <= set(frame.columns) and frame.select(needed).null_count().sum_horizontal()[0] == 0:
        idle = pl.col("idle_read_kbps") * 1024 * pl.col("window_s")
        fio = pl.col("perturbation_read_bps") * pl.col("window_s")
        own = (pl.col("read_bytes") - idle - fio).alias(SERVER_READS)
        return frame.with_columns(own), "device_minus_perturbation"
    return frame.with_columns(pl.lit(None, pl.Float64).alias(SERVER_READS)), None


def server_reads_report(runs: pl.DataFrame, source: str) -> Criterion:
    """The server's own device reads per run (info): under a perturbation the device
    counters also count fio's I/O; these, and the method that separated them, do not."""
    frame, method = server_reads(runs)
    own = frame[SERVER_READS]
    if method is None:
        return Criterion.missing(
            "server_own_reads",
            "the server's own device read bytes per run",
            source,
            "no_server_read_bytes_nor_perturbation_report",
            role="info",
            rows=rows(runs),
        )
    return Criterion(
        name="server_own_reads",
        statistic="min over runs of the server's own device read bytes in the window",
        value=float(own.min()),  # type: ignore[arg-type]
        ci=None,
        threshold=None,
        op="",
        source=source,
        status=SUPPORTED,
        unit="bytes",
        rows=rows(runs),
        role="info",
        details={"method": method, "per_run": own.to_list()},
    )


def storage_in_path(runs: pl.DataFrame, scope: str) -> Gate:
    """A QoS perturbation of the device acts on the server through its own reads from it:
    a run whose own device reads are zero (its G3 elsewhere, e.g. in memory) cannot show
    that mechanism, so the verdict is invalid (``no_server_device_reads``). p99 may still
    move there, with the perturbation's CPU load on a small machine: an oracle world
    whose G3 lived in memory rose 9.6 % under heavy fio (CI 0.3 to 18.6 %), all of it
    beside storage. Where the server's own reads cannot be told apart the gate does not
    apply (the ``server_own_reads`` report says why)."""
    frame, method = server_reads(runs)
    if method is None or runs.height == 0:
        return Gate("storage_in_path", None, INVALID, details={"scope": scope, "method": method})
    own = frame[SERVER_READS]
    failing = [[*r, b] for r, b in zip(rows(runs), own, strict=True) if b <= 0]
    return Gate(
        "storage_in_path",
        not failing,
        INVALID,
        value=float(cast(float, own.min())),
        threshold=0.0,
        reasons=["no_server_device_reads"] if failing else [],
        details={
            "scope": scope,
            "method": method,
            "statistic": "min over runs of the server's own device read bytes in the window",
            "failing_runs": failing,
        },
    )


def no_tier_traffic(runs: pl.DataFrame, tiers: str, name: str, source: str) -> Criterion:
    """A stack that must not use its KV tiers: no run onboards from them in its window.

    Missing counters are missing, not zero: inconclusive (``no_kv_tier_telemetry``),
    unless the stack has no tier below G1 at all (no G3 directory and no tier counters),
    where the criterion is reported only (``stack_without_kv_tiers``).
    """
    what = f"KV blocks onboarded from {'G3' if tiers == 'g3' else 'G2/G3'}, max over runs"
    onboards = tier_traffic(runs, tiers, ONBOARDS)
    counters = [c for t in TIERS_OF[tiers] for c in TIER_ROUTES[t][ONBOARDS]]
    tierless = (
        runs.height > 0
        and "g3_dir" in runs.columns
        and runs["g3_dir"].is_null().all()
        and run_sums(runs, counters).null_count() == runs.height
    )
    if runs.height == 0 or tierless or onboards.null_count():
        return Criterion.missing(
            name,
            what,
            source,
            "stack_without_kv_tiers" if tierless else "no_kv_tier_telemetry",
            threshold=0.0,
            op="==",
            role="info" if tierless else "rule",
            rows=rows(runs),
        )
    worst = float(onboards.max())  # type: ignore[arg-type]
    return Criterion(
        name=name,
        statistic=what,
        value=worst,
        ci=None,
        threshold=0.0,
        op="==",
        source=source,
        status=SUPPORTED if worst == 0 else NOT_SUPPORTED,
        reasons=[] if worst == 0 else ["kv_tier_traffic_present"],
        unit="blocks",
        rows=rows(runs),
        details={"per_run": onboards.to_list()},
    )


def runs_listing(
    data: Runs, used: pl.DataFrame, unused_reason: str | Mapping[str, str] = ""
) -> list[dict[str, Any]]:
    """Every run of the sources: used or not, and why not (failed attempts included);
    ``unused_reason`` is one reason for every run not used, or one per run id."""
    used_ids = set(used["run_id"])
    out = []
    for r in data.points.iter_rows(named=True):
        unused = (
            unused_reason.get(r["run_id"])
            if isinstance(unused_reason, Mapping)
            else unused_reason or None
        )
        why = r["exclude_reason"] or (None if r["run_id"] in used_ids else unused)
        out.append(
            {
                "hyp": r["hyp"],
                "stack": r["stack"],
                "point": r["point"],
                "rep": r["rep"],
                "run_id": r["run_id"],
                "outcome": r["outcome"],
                "reasons": r["reasons"],
                "used": r["run_id"] in used_ids,
                "excluded_at_ingest": r["excluded"],
                "excluded_reason": why,
            }
        )
    return out


def verdict(
    ctx: Context,
    criteria: list[Criterion],
    gates: list[Gate],
    used: pl.DataFrame,
    *,
    stacks: dict[str, Any] | None = None,
    unused_reason: str | Mapping[str, str] = "",
    notes: Sequence[str] = (),
) -> Verdict:
    """Assemble the verdict with the run listing and the tables written so far."""
    return Verdict(
        hypothesis=ctx.hyp,
        title=ctx.title,
        criteria=criteria,
        gates=gates,
        stacks=stacks or {},
        runs=runs_listing(ctx.data, used, unused_reason),
        tables=list(ctx.tables),
        notes=list(notes),
    )
