"""v2.5 H2, H3, H4: UMA paging (stack P, ``mode: paging``).

H2, UMA pressure "hockey stick". The work is fixed and the memory shrinks, so the
pressure of a step is its KV demand over the memory it has (``users x blocks per
request / resident_blocks``); compute is the same at every step. Rule: p99 TTFT stays
near its no-pressure baseline, then at the paging knee rises past
STORAGE_KNEE_BASELINE_FACTOR (1.5) x baseline, and device reads rise with it. The knee
is the first step whose p99 estimate exceeds 1.5 x the first step's. Criteria: the
p99 ratio at the knee has its CI above 1.5; device read IOPS at the knee minus at the
baseline has its CI above 0. Mechanism gate: pages were faulted in at the knee.

H3 (analytical, over H2): OS paging and swap counters (``pgmajfault_per_s`` +
``pswpin_per_s``, /proc/vmstat) track the knee. Criterion: Pearson r of the OS paging
rate and p99 over runs has its CI above 0 (refuted within ±NEAR_ZERO_R). The
simulator's own fault counter against p99 is reported beside it: on the simulator the
paging is a file the server reads itself, so the kernel's counters need not see it,
and the verdict says which counter did.

H4, storage QoS under paging: background I/O on the swap file's device (fio, or the
builtin generator) raises p99 TTFT. Criterion: p99 under ``heavy`` over p99 under
``none`` has its CI above 1 + MATERIAL_P99_CHANGE. The read await ratio is reported.
Mechanism gate: pages were faulted in at every QoS level.
"""

from __future__ import annotations

import json
import math

import polars as pl

from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import difference
from spark_harness.analysis.evidence import Context, PointStats, rows, verdict
from spark_harness.analysis.verdict import INF, Criterion, Verdict
from spark_harness.legacy.analysis.common import (
    X,
    correlation_criterion,
    engaged_gate,
    labels_in_order,
    present,
    ratio,
    rise_criterion,
    sweep_runs,
)

MEMORY_AXIS = "server.sim.resident_blocks"
QOS_AXIS = "qos.profile"
QOS_LEVELS = {"none": 0.0, "moderate": 1.0, "heavy": 2.0}
KNEE_FACTOR = T.STORAGE_KNEE_BASELINE_FACTOR
SRC_H2 = "LEGACY.md v2.5 H2: p99 hockey stick at the paging knee, device reads rise with it"
SRC_H3 = "LEGACY.md v2.5 H3: OS paging/swap counters track the H2 knee"
SRC_H4 = "LEGACY.md v2.5 H4: degraded storage QoS raises p99 under paging"
OS_PAGING = "os_paging_per_s"


def kv_demand_blocks(spec_json: str) -> float | None:
    """KV blocks the point's users hold at once (reserve allocation: prompt + output)."""
    spec = json.loads(spec_json)
    try:
        users = int(spec["load"]["users"])
        w = spec["workload"]
        bt = int(spec["server"]["sim"].get("block_tokens", 16))
        return float(users * math.ceil((w["context_tokens"] + w["output_tokens"]) / bt))
    except (KeyError, TypeError, ValueError):
        return None


def with_pressure(runs: pl.DataFrame) -> pl.DataFrame:
    """Add ``pressure`` (KV demand / resident blocks) and ``kv_demand_blocks`` per run."""
    demand = [kv_demand_blocks(s) for s in runs["spec_json"]]
    return runs.with_columns(
        pl.Series("kv_demand_blocks", demand, dtype=pl.Float64),
    ).with_columns((pl.col("kv_demand_blocks") / pl.col(X)).alias("pressure"))


def _figure_columns(runs: pl.DataFrame, extra: list[str]) -> pl.DataFrame:
    cols = ["hyp", "stack", "point", "rep", X, "ttft_p50", "ttft_p99", *extra]
    return runs.select([c for c in cols if c in runs.columns])


def evaluate_knee(ctx: Context) -> Verdict:
    """v2.5 H2 (module docstring)."""
    used = with_pressure(sweep_runs(ctx, MEMORY_AXIS)).sort("pressure", "rep")
    gates = ctx.gates(used)
    if used.select(pl.col("point").n_unique()).item() < 2:
        c = Criterion.missing("p99_ratio_at_knee", "ratio", SRC_H2, "fewer_than_two_steps")
        return verdict(ctx, [c], gates, used)
    ps = PointStats(ctx.data, used)
    steps = labels_in_order(ps, used)
    base = steps[0]
    ratios = [ratio(ps, "p99", s, base) for s in steps]
    knee = next((i for i, r in enumerate(ratios) if i > 0 and (r.value or 0) > KNEE_FACTOR), None)
    at = knee if knee is not None else len(steps) - 1  # no knee: judged at the most pressure
    knee_label = steps[at]
    at_runs = ps.point_runs(knee_label)
    criteria = [
        rise_criterion(
            "p99_ratio_at_knee",
            ratios[at],
            KNEE_FACTOR,
            SRC_H2,
            f"p99 TTFT at {knee_label[2]} / p99 TTFT at {base[2]}",
            rows(at_runs),
            unit="x",
            details={
                "knee_point": knee_label[2] if knee is not None else None,
                "baseline_point": base[2],
                "ratios": {s[2]: r.__dict__ for s, r in zip(steps, ratios, strict=True)},
                "step_before_knee": steps[at - 1][2],
                "ratio_before_knee": ratios[at - 1].__dict__,
            },
        )
    ]
    if present(used, "read_iops"):
        d = difference(ps, "read_iops", knee_label, base)
        criteria.append(
            Criterion.judged(
                "device_reads_rise_at_knee",
                f"device read IOPS at {knee_label[2]} minus at {base[2]}",
                d.value,
                d.ci,
                threshold=0.0,
                op=">",
                source=SRC_H2,
                supported=[(0.0, INF)],
                refuted=[(-INF, 0.0)],
                unit="iops",
                rows=rows(at_runs),
            )
        )
    else:
        criteria.append(
            Criterion.missing(
                "device_reads_rise_at_knee", "difference", SRC_H2, "no_disk_telemetry"
            )
        )
    gates.append(engaged_gate(at_runs, "paging_faults", "page_faults", f"runs at {knee_label[2]}"))
    table = _figure_columns(
        used.with_columns(
            (pl.col("point") == knee_label[2]).alias("knee")
            if knee is not None
            else pl.lit(False).alias("knee")
        ),
        ["pressure", "kv_demand_blocks", "read_iops", "read_kbps", "paging_faults", "knee"],
    )
    ctx.write_table("fig_paging_knee.csv", table)
    return verdict(ctx, criteria, gates, used)


def evaluate_counters(ctx: Context) -> Verdict:
    """v2.5 H3 (module docstring)."""
    used = ctx.used()
    os_cols = [c for c in ("pgmajfault_per_s", "pswpin_per_s") if present(used, c)]
    if os_cols:
        used = used.with_columns(pl.sum_horizontal(os_cols).alias(OS_PAGING))
    gates = ctx.gates(used)
    ps = PointStats(ctx.data, used)
    if os_cols:
        criteria = [
            correlation_criterion("r_os_paging_p99", ps, OS_PAGING, "ttft_p99", SRC_H3, used)
        ]
    else:
        criteria = [
            Criterion.missing(
                "r_os_paging_p99",
                "Pearson r",
                SRC_H3,
                "no_os_paging_counters",
                threshold=0.0,
                op=">",
            )
        ]
    if present(used, "paging_faults"):
        criteria.append(
            correlation_criterion(
                "r_server_faults_p99", ps, "paging_faults", "ttft_p99", SRC_H3, used, role="info"
            )
        )
    notes = [f"OS paging rate = {' + '.join(os_cols) or 'not recorded'} (/proc/vmstat)"]
    cols = ["hyp", "stack", "point", "rep", "ttft_p50", "ttft_p99", OS_PAGING, *os_cols]
    ctx.write_table(
        "fig_counters_vs_p99.csv",
        used.select([c for c in [*cols, "paging_faults"] if c in used.columns]),
    )
    return verdict(ctx, criteria, gates, used, notes=notes)


def evaluate_qos(ctx: Context) -> Verdict:
    """v2.5 H4 (module docstring)."""
    used = sweep_runs(ctx, QOS_AXIS, lambda v: QOS_LEVELS.get(str(v), math.nan))
    gates = ctx.gates(used)
    ps = PointStats(ctx.data, used)
    steps = labels_in_order(ps, used)
    by_name = {s[2].removeprefix("qos-"): s for s in steps}
    if "none" not in by_name or len(steps) < 2:
        c = Criterion.missing(
            "p99_ratio_worst_qos", "ratio", SRC_H4, "no_baseline_and_degraded_qos"
        )
        return verdict(ctx, [c], gates, used)
    base = by_name["none"]
    worst = by_name.get("heavy", steps[-1])
    worst_runs = ps.point_runs(worst)
    criteria = [
        rise_criterion(
            "p99_ratio_worst_qos",
            ratio(ps, "p99", worst, base),
            1 + T.MATERIAL_P99_CHANGE,
            SRC_H4,
            f"p99 TTFT at {worst[2]} / p99 TTFT at {base[2]}",
            rows(worst_runs),
            unit="x",
        )
    ]
    if present(used, "read_await_ms"):
        s = ratio(ps, "read_await_ms", worst, base)
        criteria.append(
            Criterion(
                name="read_await_ratio_worst_qos",
                statistic=f"device read await at {worst[2]} / at {base[2]}",
                value=s.value,
                ci=s.ci,
                threshold=None,
                op="",
                source=SRC_H4,
                status="supported",
                unit="x",
                rows=rows(worst_runs),
                role="info",
            )
        )
    gates.append(engaged_gate(used, "paging_faults", "page_faults", "all QoS levels together"))
    ctx.write_table(
        "fig_qos_paging.csv",
        _figure_columns(used, ["read_await_ms", "read_iops", "iowait_pct", "paging_faults"]),
    )
    return verdict(ctx, criteria, gates, used)
