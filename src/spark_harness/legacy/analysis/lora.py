"""v2.5 H5, H6, H7: LoRA adapters on storage (stack A with adapter files).

H5, LoRA working-set scaling: the workload draws from 4, 16, then 64 adapters while the
server keeps ``max_loras`` resident, so adapters churn through the cache. Rule: p99 TTFT
and device read IOPS rise with the working set. Criteria: the OLS slope of p99 on the
number of adapters and that of device read IOPS both have CIs above 0
(:func:`~spark_harness.analysis.criteria.material_slope`: a rise below
MATERIAL_P99_CHANGE across the range refutes). Mechanism gate: adapter loads happened.

H6, LoRA storm A/B: the baseline workload (one adapter) against the storm (every request
to one of 64 cold adapters). Criterion: p99 storm / p99 baseline has its CI above
1 + MATERIAL_P99_CHANGE. Mechanism gate: the storm loaded more adapters than the
baseline.

H7 (analytical, over H5 and H6): device read counters track LoRA access. The previous
harness read smartctl's host-read counter; this one samples /proc/diskstats (the
watched devices), which is what the runs carry. Criterion: Pearson r of device read
bytes and the bytes the server read loading adapters, over runs, has its CI above 0.
The ratio of device bytes to adapter bytes is reported (below 1: reads served from the
page cache).
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from spark_harness.analysis import thresholds as T
from spark_harness.analysis.criteria import material_slope
from spark_harness.analysis.evidence import Context, PointStats, rows, verdict
from spark_harness.analysis.verdict import SUPPORTED, Criterion, Gate, Verdict
from spark_harness.inputs import InputError, read_adapters
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

AXIS = "workload.adapters"
SRC_H5 = "LEGACY.md v2.5 H5: p99 and device IOPS rise with the LoRA working set"
SRC_H6 = "LEGACY.md v2.5 H6: a LoRA storm raises p99 over the baseline"
SRC_H7 = "LEGACY.md v2.5 H7: device read counters track LoRA adapter loads"


def adapter_count(path: Any) -> float:
    """Adapters in a list file (the working set a point draws from); NaN if unreadable."""
    try:
        return float(len(read_adapters(str(path))))
    except (InputError, OSError, ValueError):
        return math.nan


def _runs(ctx: Context) -> pl.DataFrame:
    """Usable runs with ``adapters`` (and ``x``): the size of the mix each point drew from."""
    return sweep_runs(ctx, AXIS, adapter_count).with_columns(pl.col(X).alias("adapters"))


def _table(ctx: Context, name: str, runs: pl.DataFrame) -> None:
    cols = ["hyp", "stack", "point", "rep", X, "adapters", "ttft_p50", "ttft_p99"]
    cols += ["read_iops", "read_bytes", "lora_loads", "lora_read_bytes"]
    ctx.write_table(name, runs.select([c for c in cols if c in runs.columns]))


def evaluate_working_set(ctx: Context) -> Verdict:
    """v2.5 H5 (module docstring)."""
    used = _runs(ctx)
    gates = ctx.gates(used)
    if used.height == 0 or used["adapters"].is_nan().any():
        c = Criterion.missing("slope_p99_vs_adapters", "slope", SRC_H5, "adapter_lists_unreadable")
        return verdict(ctx, [c], gates, used)
    ps = PointStats(ctx.data, used)
    r = rows(used)
    criteria = [
        material_slope("slope_p99_vs_adapters", ps, "adapters", "p99", SRC_H5, "ms/adapter", r)
    ]
    if present(used, "read_iops"):
        criteria.append(
            material_slope(
                "slope_iops_vs_adapters", ps, "adapters", "read_iops", SRC_H5, "iops/adapter", r
            )
        )
    else:
        criteria.append(
            Criterion.missing("slope_iops_vs_adapters", "slope", SRC_H5, "no_disk_telemetry")
        )
    gates.append(engaged_gate(used, "lora_loads", "adapter_loads", "every working set"))
    _table(ctx, "fig_lora_working_set.csv", used)
    return verdict(ctx, criteria, gates, used)


def evaluate_storm(ctx: Context) -> Verdict:
    """v2.5 H6 (module docstring)."""
    used = _runs(ctx)
    gates = ctx.gates(used)
    ps = PointStats(ctx.data, used)
    steps = labels_in_order(ps, used)
    if len(steps) < 2:
        c = Criterion.missing("p99_ratio_storm", "ratio", SRC_H6, "no_baseline_and_storm")
        return verdict(ctx, [c], gates, used)
    base, storm = steps[0], steps[-1]
    base_runs, storm_runs = ps.point_runs(base), ps.point_runs(storm)
    criteria = [
        rise_criterion(
            "p99_ratio_storm",
            ratio(ps, "p99", storm, base),
            1 + T.MATERIAL_P99_CHANGE,
            SRC_H6,
            f"p99 TTFT at {storm[2]} / p99 TTFT at {base[2]}",
            rows(storm_runs) + rows(base_runs),
            unit="x",
        )
    ]
    gates.append(_storm_gate(base_runs, storm_runs))
    _table(ctx, "fig_lora_storm.csv", used)
    return verdict(ctx, criteria, gates, used)


def _storm_gate(base: pl.DataFrame, storm: pl.DataFrame) -> Gate:
    """The storm is a storm: it loaded more adapters than the baseline did."""
    if not (present(base, "lora_loads") and present(storm, "lora_loads")):
        return Gate("mechanism", False, "invalid", reasons=["no_lora_loads_telemetry"])
    b, s = float(base["lora_loads"].mean()), float(storm["lora_loads"].mean())  # type: ignore[arg-type]
    return Gate(
        "mechanism",
        s > b,
        "invalid",
        value=s,
        threshold=b,
        reasons=[] if s > b else ["storm_loaded_no_more_adapters"],
        details={"baseline_loads_per_run": b, "storm_loads_per_run": s},
    )


def evaluate_device_reads(ctx: Context) -> Verdict:
    """v2.5 H7 (module docstring)."""
    used = ctx.used()
    gates = ctx.gates(used)
    notes = [
        "device reads: /proc/diskstats of the watched devices (smartctl host reads not sampled)"
    ]
    if not (present(used, "read_bytes") and present(used, "lora_read_bytes")):
        c = Criterion.missing(
            "r_device_vs_lora_bytes",
            "Pearson r",
            SRC_H7,
            "no_device_or_lora_counters",
            threshold=0.0,
            op=">",
        )
        return verdict(ctx, [c], gates, used, notes=notes)
    ps = PointStats(ctx.data, used)
    criteria = [
        correlation_criterion(
            "r_device_vs_lora_bytes", ps, "lora_read_bytes", "read_bytes", SRC_H7, used
        )
    ]
    lora_total = float(used["lora_read_bytes"].sum())
    dev_total = float(used["read_bytes"].sum())
    criteria.append(
        Criterion(
            name="device_over_lora_bytes",
            statistic="device read bytes / adapter bytes read, summed over runs",
            value=dev_total / lora_total if lora_total > 0 else None,
            ci=None,
            threshold=None,
            op="",
            source=SRC_H7,
            status=SUPPORTED,
            unit="x",
            rows=rows(used),
            role="info",
            details={"band_of_v3_H7": list(T.H7_RATIO_BAND)},
        )
    )
    gates.append(engaged_gate(used, "lora_loads", "adapter_loads", "runs of H5 and H6"))
    cols = [
        "hyp",
        "stack",
        "point",
        "rep",
        "ttft_p99",
        "read_bytes",
        "lora_read_bytes",
        "lora_loads",
    ]
    ctx.write_table("fig_device_vs_lora.csv", used.select([c for c in cols if c in used.columns]))
    return verdict(ctx, criteria, gates, used, notes=notes)
