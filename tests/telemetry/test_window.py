"""Cutting a point's window out of the spool: the flush handshake, the window's rows
and figures, and what happens when the sidecar cannot answer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from spark_harness.contract import SidecarInfo
from spark_harness.telemetry.window import collect, summarize

MS = 1_000_000


def _sample(t_ms: int, **fields: float) -> dict[str, Any]:
    return {"kind": "sample", "t_ns": t_ms * MS, **fields}


def test_summarize_keeps_the_window_and_every_unavailable_row() -> None:
    rows = [
        {"kind": "meta", "t_ns": 0, "devices": ["nvme0n1"], "g3_device": "nvme0n1", "cpu_pct": 0.1},
        {"kind": "unavailable", "t_ns": 1 * MS, "source": "gpu", "reason": "no NVML"},
        _sample(100),
        _sample(300, x=1),
        _sample(500, x=2),
        _sample(700, x=3),
        _sample(1100, x=4),  # one tick lost before this one
        _sample(1300),
        {"kind": "meta", "t_ns": 1400 * MS, "devices": ["nvme0n1"], "g3_device": "nvme0n1",
         "cpu_pct": 0.8, "late_ticks": 1, "errors": {"gpu": {"count": 1}}},
    ]  # fmt: skip
    out, meta = summarize(rows, start_ns=250 * MS, end_ns=1150 * MS, cadence_ms=200)
    assert [r["kind"] for r in out] == ["sample"] * 4 + ["unavailable"]
    assert [r["x"] for r in out[:4]] == [1, 2, 3, 4]
    assert meta["samples"] == 4
    assert meta["cadence_ms_asked"] == 200
    assert meta["cadence_ms_achieved"] == pytest.approx(800 / 3)
    assert meta["max_gap_ms"] == pytest.approx(400)
    assert meta["interval_ms_p50"] == pytest.approx(200)
    assert meta["edge_gaps_ms"] == pytest.approx([50, 50])
    assert meta["sidecar_cpu_pct"] == 0.8 and meta["sidecar_late_ticks"] == 1
    assert meta["devices"] == ["nvme0n1"] and meta["g3_device"] == "nvme0n1"
    assert meta["unavailable"] == ["gpu"]


def test_empty_window_has_no_figures() -> None:
    out, meta = summarize([_sample(100)], start_ns=200 * MS, end_ns=300 * MS, cadence_ms=200)
    assert out == [] and meta["samples"] == 0 and meta["cadence_ms_achieved"] is None


def test_collect_from_a_running_sidecar(point: Any) -> None:
    point.write_endpoint()
    point.start_sidecar("--cadence-ms", "100")
    info = point.sampling()
    time.sleep(0.35)
    start = time.time_ns()
    time.sleep(1.0)
    end = time.time_ns()
    rows, meta = collect(info, start, end)
    assert meta["flush"] == "ok"
    samples = [r for r in rows if r["kind"] == "sample"]
    assert 9 <= len(samples) <= 11 and meta["samples"] == len(samples)
    assert all(start <= r["t_ns"] <= end for r in samples)
    assert meta["cadence_ms_achieved"] == pytest.approx(100, abs=10)
    assert meta["max_gap_ms"] < 150
    assert any(r["kind"] == "unavailable" and r["source"] == "gpu" for r in rows) or (
        "gpu" in meta["samplers"]
    )
    assert meta["sidecar_cpu_pct"] is not None and meta["sidecar_cpu_pct"] < 50
    # the spool now holds a flush marker after the window
    kinds = [json.loads(line)["kind"] for line in Path(info.spool).read_text().splitlines()]
    assert "flush" in kinds


def test_collect_twice_waits_for_the_new_flush(point: Any) -> None:
    point.write_endpoint()
    point.start_sidecar("--cadence-ms", "100")
    info = point.sampling()
    time.sleep(0.3)
    collect(info, 0, time.time_ns())
    time.sleep(0.3)
    before_second = time.monotonic_ns()
    rows, meta = collect(info, 0, 2 * time.time_ns())
    assert meta["flush"] == "ok"
    # the second flush's sample is in, so the newest sample is after the second request:
    # on the sidecar's own clock (this process's wall clock may have been stepped since
    # the sidecar took its anchor; some CI machines step it mid-run)
    anchor = meta["sidecar_clock"]
    newest = max(r["t_ns"] for r in rows if r["kind"] == "sample")
    assert newest - anchor["wall_ns"] + anchor["mono_ns"] >= before_second


def test_collect_keeps_the_data_of_a_dead_sidecar(point: Any) -> None:
    point.write_endpoint()
    proc = point.start_sidecar("--cadence-ms", "100")
    info = point.sampling()
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    rows, meta = collect(info, 0, time.time_ns())
    assert meta["flush"] == "sidecar_gone"
    assert meta["samples"] >= 3 and len(rows) >= 3


def test_collect_times_out_on_a_sidecar_that_does_not_answer(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    spool.write_text(json.dumps(_sample(100, x=1)) + "\n" + '{"kind": "sam')  # torn last line
    deaf = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, time; signal.signal(signal.SIGUSR1, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert deaf.stdout and deaf.stdout.readline().strip() == "ready"
        info = SidecarInfo(pid=deaf.pid, spool=str(spool), cadence_ms=200, started_ns=0)
        t0 = time.monotonic()
        rows, meta = collect(info, 0, 200 * MS, timeout_s=0.5)
        assert 0.5 <= time.monotonic() - t0 < 3
    finally:
        deaf.send_signal(signal.SIGKILL)
        deaf.wait()
        if deaf.stdout:
            deaf.stdout.close()
    assert meta["flush"] == "timeout"
    assert rows == [_sample(100, x=1)]


def test_window_ending_before_it_starts_is_an_error(tmp_path: Path) -> None:
    info = SidecarInfo(pid=1, spool=str(tmp_path / "s"), cadence_ms=200, started_ns=0)
    with pytest.raises(ValueError, match="ends before it starts"):
        collect(info, 10, 5)


def test_a_late_answer_joins_the_sample_of_its_tick() -> None:
    rows = [
        _sample(100, x=1),
        _sample(300, x=2),
        _sample(100, kv_running=3),  # the metrics read of tick 100, answered late
        _sample(500, x=3),
    ]
    out, meta = summarize(rows, 0, 600 * MS, cadence_ms=200)
    assert out == [_sample(100, x=1, kv_running=3), _sample(300, x=2), _sample(500, x=3)]
    assert meta["samples"] == 3 and meta["max_gap_ms"] == pytest.approx(200)
