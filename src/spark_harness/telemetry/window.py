"""Cutting one point's telemetry window out of the sidecar's spool.

The load generator calls :func:`collect` at the end of its point: the sidecar is asked
to flush (SIGUSR1), and once its flush marker is in the spool every sample up to that
moment is on disk. The marker is recognised by its position (written after the byte
offset the spool had when the signal was sent), so the check does not depend on two
processes' clocks agreeing.

Nothing measured is dropped for want of a flush: if the sidecar is gone or does not
answer in time, the window is cut from what the spool holds and ``meta["flush"]`` says so.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from spark_harness.contract import SidecarInfo

log = logging.getLogger(__name__)

POLL_S = 0.02


def _lines_from(path: Path, offset: int) -> list[tuple[int, dict[str, Any]]]:
    """Complete JSON lines starting at or after ``offset``, with their positions."""
    out: list[tuple[int, dict[str, Any]]] = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        pos = offset
        for raw in fh:
            start, pos = pos, pos + len(raw)
            if not raw.endswith(b"\n"):
                break  # being written
            try:
                out.append((start, json.loads(raw)))
            except json.JSONDecodeError:
                continue  # a torn line (writer killed mid-line)
    return out


def _wait_for_flush(info: SidecarInfo, timeout_s: float) -> tuple[str, int | None]:
    """Signal the sidecar; return (status, position after its flush marker)."""
    spool = Path(info.spool)
    offset = spool.stat().st_size
    try:
        os.kill(info.pid, signal.SIGUSR1)
    except ProcessLookupError:
        return "sidecar_gone", None
    deadline = time.monotonic() + timeout_s
    scanned = offset
    while True:
        for pos, row in _lines_from(spool, scanned):
            if row.get("kind") == "flush":
                return "ok", pos
        if time.monotonic() >= deadline:
            return "timeout", None
        time.sleep(POLL_S)


def _intervals_ms(times: list[int]) -> list[float]:
    return [(b - a) / 1e6 for a, b in itertools.pairwise(times)]


def _percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def summarize(
    rows: list[dict[str, Any]], start_ns: int, end_ns: int, cadence_ms: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The window's rows (one sample per tick in [start_ns, end_ns], in time order, and
    every ``unavailable`` row) and the cadence, coverage and cost figures of that window."""
    by_tick: dict[int, dict[str, Any]] = {}
    for r in rows:  # a late answer's row joins the sample of its tick
        if r.get("kind") == "sample" and start_ns <= r["t_ns"] <= end_ns:
            tick = by_tick.setdefault(r["t_ns"], {})
            for key, value in r.items():
                tick.setdefault(key, value)
    samples = [by_tick[t] for t in sorted(by_tick)]
    unavailable = [r for r in rows if r.get("kind") == "unavailable"]
    metas = [r for r in rows if r.get("kind") == "meta"]
    last_meta = metas[-1] if metas else {}
    times = [r["t_ns"] for r in samples]
    gaps = _intervals_ms(times)
    meta: dict[str, Any] = {
        "cadence_ms_asked": cadence_ms,
        "cadence_ms_achieved": sum(gaps) / len(gaps) if gaps else None,
        "samples": len(times),
        "interval_ms_p50": _percentile(gaps, 0.5) if gaps else None,
        "interval_ms_p99": _percentile(gaps, 0.99) if gaps else None,
        "max_gap_ms": max(gaps) if gaps else None,
        "edge_gaps_ms": [(times[0] - start_ns) / 1e6, (end_ns - times[-1]) / 1e6]
        if times
        else None,
        "sidecar_cpu_pct": last_meta.get("cpu_pct"),
        "sidecar_late_ticks": last_meta.get("late_ticks"),
        "late_results": last_meta.get("late_results", {}),
        "sampler_errors": last_meta.get("errors", {}),
        "samplers": last_meta.get("samplers", []),
        "devices": last_meta.get("devices", []),
        "device_info": last_meta.get("device_info", {}),
        "g3_device": last_meta.get("g3_device"),
        "unavailable": sorted({r["source"] for r in unavailable}),
        "sidecar_clock": last_meta.get("clock"),
    }  # fmt: skip
    return samples + unavailable, meta


def collect(
    info: SidecarInfo, start_ns: int, end_ns: int, timeout_s: float = 5.0
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Flush the sidecar and return the window's rows and metadata (see :func:`summarize`).

    ``meta["flush"]`` is ``ok``, or ``timeout`` / ``sidecar_gone`` when the window was cut
    from the spool as it stood.
    """
    if end_ns < start_ns:
        raise ValueError(f"window ends before it starts: {start_ns} > {end_ns}")
    status, upto = _wait_for_flush(info, timeout_s)
    if status != "ok":
        log.warning("sidecar %d did not flush (%s); using the spool as it is", info.pid, status)
    rows = [row for pos, row in _lines_from(Path(info.spool), 0) if upto is None or pos <= upto]
    out, meta = summarize(rows, start_ns, end_ns, info.cadence_ms)
    meta["flush"] = status
    return out, meta
