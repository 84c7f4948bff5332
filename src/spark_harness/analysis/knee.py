"""Knees of a sweep, exactly as docs/PLAN.md defines them (pure functions of steps).

Each function takes the sweep's steps in sweep order (only steps that have data) and
returns the index of the step it finds, or None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from spark_harness.analysis import thresholds as T


def _over(x: float, limit: float) -> bool:
    return not math.isnan(x) and x > limit


def queue_knee(p99_over_p50: Sequence[float]) -> int | None:
    """U_work knee: first step with p99 > 2 × p50 whose next step also satisfies it."""
    r = list(p99_over_p50)
    for i in range(len(r) - 1):
        if _over(r[i], T.KNEE_P99_OVER_P50) and _over(r[i + 1], T.KNEE_P99_OVER_P50):
            return i
    return None


def u_work(users: Sequence[int], p99_over_p50: Sequence[float]) -> tuple[int, int | None, str]:
    """(U_work, knee users or None, reason) for a concurrency sweep.

    U_work is the step below the knee; with no knee, the largest step ("the verdict says
    so"); with the knee at the first step there is no step below it, so U_work is that
    first step and the reason says so.
    """
    if not users:
        raise ValueError("u_work: the sweep has no step with data")
    k = queue_knee(p99_over_p50)
    if k is None:
        last = p99_over_p50[-1] if p99_over_p50 else math.nan
        why = "no_knee_in_sweep"
        if _over(last, T.KNEE_P99_OVER_P50):
            why += ":last_step_over_ratio_unconfirmed"
        return int(users[-1]), None, why
    if k == 0:
        return int(users[0]), int(users[0]), "knee_at_first_step"
    return int(users[k - 1]), int(users[k]), "knee_found"


def collapse(
    offered: Sequence[float],
    p99_ms: Sequence[float],
    error_share: Sequence[float],
    throughput: Sequence[float],
) -> tuple[int | None, str]:
    """Collapse point: p99 > 1000 ms, throughput falls while offered load rises, or
    errors/rejections > 1 %. Returns (index, which condition) or (None, "")."""
    for i in range(len(offered)):
        if _over(p99_ms[i], T.COLLAPSE_P99_MS):
            return i, "p99_over_1000ms"
        if _over(error_share[i], T.COLLAPSE_ERROR_SHARE):
            return i, "errors_over_1pct"
        if i > 0 and offered[i] > offered[i - 1]:
            prev, cur = throughput[i - 1], throughput[i]
            if not math.isnan(prev) and cur < prev * (1 - T.THROUGHPUT_FALL):
                return i, "throughput_falls"
    return None, ""


def saturation(users: Sequence[int], throughput: Sequence[float]) -> int | None:
    """First step past saturation: more users than the step before, but less than
    ``SATURATION_GAIN`` more completed requests per second. None: throughput still rises
    (or is unknown) at every step."""
    for i in range(1, len(users)):
        prev, cur = throughput[i - 1], throughput[i]
        known = not (math.isnan(prev) or math.isnan(cur))
        if users[i] > users[i - 1] and known and cur < prev * (1 + T.SATURATION_GAIN):
            return i
    return None


def storage_knee(fetch_share_p95: Sequence[float]) -> int | None:
    """Storage knee: first step where G3 fetch time is ≥ 50 % of TTFT at p95."""
    for i, s in enumerate(fetch_share_p95):
        if not math.isnan(s) and s >= T.STORAGE_KNEE_FETCH_SHARE:
            return i
    return None


def storage_knee_without_fetch(ratio_ci_lo: Sequence[float]) -> int | None:
    """Storage knee where the server gives no fetch latency: the first step where device
    reads and read await both exceed 1.5 × idle and p95 TTFT exceeds 1.5 × its baseline
    (the first step). Decided on CIs: ``ratio_ci_lo`` is, per step, the lower CI bound of
    the smallest of the three ratios, so noise around 1.5 never makes a knee."""
    for i, lo in enumerate(ratio_ci_lo):
        if _over(lo, T.STORAGE_KNEE_BASELINE_FACTOR):
            return i
    return None
