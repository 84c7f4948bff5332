"""U_work of one stack from its H0 concurrency sweep, and the file H2A/H2B read it from.

``write_u_work(ingest_dir, out_json)`` writes ``{"stack", "u_work", "knee", "knee_found",
"steps", "reason", ...}``; the load generator of H2A/H2B reads ``u_work`` from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from spark_harness.analysis import knee
from spark_harness.analysis.evidence import PointStats, Stat, rows
from spark_harness.analysis.runs import Runs, load
from spark_harness.files import write_json
from spark_harness.ingest import POINTS


class UWorkError(ValueError):
    """U_work cannot be computed (no concurrency axis, or no usable step)."""


@dataclass
class Sweep:
    """One stack's concurrency sweep: steps with data in order, with their statistics."""

    stack: str
    axis: str  # the concurrency axis (dotted key)
    users: list[int]
    labels: list[tuple[Any, ...]]
    ps: PointStats
    failed: list[str]  # points of the sweep without any usable run

    def estimate(self, column: str) -> np.ndarray:
        e = self.ps.estimate(column)
        return np.array([e[self.ps.index(lab)] for lab in self.labels])

    def replicates(self, q: str) -> np.ndarray:
        r = self.ps.replicates(q)
        return r[:, [self.ps.index(lab) for lab in self.labels]]

    def ratio(self) -> tuple[np.ndarray, np.ndarray]:
        """p99/p50 per step: estimates and replicates."""
        est = self.estimate("ttft_p99") / self.estimate("ttft_p50")
        return est, self.replicates("p99") / self.replicates("p50")


def sweep(data: Runs, stack: str, axis: str, hyp: str | None = None) -> Sweep:
    """The concurrency sweep (along ``axis``) of one stack, failed points listed."""
    runs = data.runs.filter(pl.col("stack") == stack)
    pts = data.points.filter(pl.col("stack") == stack)
    if hyp is not None:
        runs, pts = runs.filter(pl.col("hyp") == hyp), pts.filter(pl.col("hyp") == hyp)
    if axis not in data.points.columns:
        raise UWorkError(f"stack {stack}: the points carry no {axis} axis")
    if runs.height == 0:
        raise UWorkError(f"stack {stack}: no usable run in the concurrency sweep")
    runs = runs.sort(axis, "rep")
    ps = PointStats(data, runs)
    order = runs.select("hyp", "stack", "point", axis).unique(maintain_order=True)
    labels = [tuple(r[:3]) for r in order.iter_rows()]
    users = [int(u) for u in order[axis]]
    failed = sorted(set(pts["point"]) - set(runs["point"]))
    return Sweep(stack, axis, users, labels, ps, failed)


def result(sw: Sweep) -> dict[str, Any]:
    """The U_work file's content for one sweep."""
    ratio, ratio_rep = sw.ratio()
    u, knee_users, reason = knee.u_work(sw.users, list(ratio))
    est = {q: sw.estimate(f"ttft_{q}") for q in ("p50", "p95", "p99")}
    reps = {q: sw.replicates(q) for q in ("p50", "p95", "p99")}
    err = sw.estimate("error_share")
    thr = sw.estimate("throughput_rps")
    c_idx, c_why = knee.collapse(sw.users, list(est["p99"]), list(err), list(thr))
    s_idx = knee.saturation(sw.users, list(thr))
    steps = []
    for i, lab in enumerate(sw.labels):
        point_runs = sw.ps.point_runs(lab)
        step: dict[str, Any] = {"users": sw.users[i], "point": lab[2]}
        for q in ("p50", "p95", "p99"):
            s = Stat.of(est[q][i], reps[q][:, i])
            step[f"{q}_ms"], step[f"{q}_ci"] = s.value, s.ci
        r = Stat.of(ratio[i], ratio_rep[:, i])
        step.update(
            p99_over_p50=r.value,
            p99_over_p50_ci=r.ci,
            error_share=_num(err[i]),
            throughput_rps=_num(thr[i]),
            n_reps=point_runs.height,
            rows=rows(point_runs),
        )
        steps.append(step)
    if sw.failed:
        reason += ";failed_points:" + ",".join(sw.failed)
    return {
        "stack": sw.stack,
        "u_work": u,
        "knee": knee_users,
        "knee_found": knee_users is not None,
        "reason": reason,
        "collapse": None if c_idx is None else {"users": sw.users[c_idx], "reason": c_why},
        "saturated_at": None if s_idx is None else sw.users[s_idx],
        "failed_points": sw.failed,
        "steps": steps,
    }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def write_u_work(ingest_dir: Path, out_json: Path) -> None:
    """Compute U_work from one stack's ingested H0 sweep and write it to ``out_json``."""
    pts = pl.read_parquet(Path(ingest_dir) / POINTS, columns=["hyp", "stack"]).unique()
    if pts.height != 1:
        raise UWorkError(f"{ingest_dir}: expected one (hypothesis, stack), found {pts.rows()}")
    hyp, stack = pts.row(0)
    data = load({(hyp, stack): Path(ingest_dir)})
    # H0 sweeps concurrency alone: its one axis is the concurrency axis, whatever its key
    swept = data.axis_columns()
    if len(swept) != 1:
        raise UWorkError(f"{ingest_dir}: expected one sweep axis (concurrency), found {swept}")
    write_json(out_json, result(sweep(data, stack, swept[0])))
