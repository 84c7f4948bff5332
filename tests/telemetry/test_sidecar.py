"""The sampling loop: cadence, flushes, and isolation of samplers that crash, hang,
time out, vanish or return junk."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import statistics
import threading
from pathlib import Path
from typing import Any

import pytest

from spark_harness.clock import Clock
from spark_harness.telemetry.sampler import AsyncSampler, Fields, Sampler, Unavailable
from spark_harness.telemetry.sidecar import Sidecar, Spool

CADENCE_MS = 100.0


class Good(Sampler):
    name = "good"

    def sample(self) -> Fields:
        return {"good_x": 1}


class Crashing(Sampler):
    name = "crash"

    def sample(self) -> Fields:
        raise RuntimeError("boom")


class Hanging(Sampler):
    """A driver call that never returns (until the test ends)."""

    name = "hang"
    blocking = True

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def sample(self) -> Fields:
        self.calls += 1
        self.release.wait(30)
        return {"hang_x": 1}


class SlowAsync(AsyncSampler):
    name = "slow"

    async def sample(self) -> Fields:
        await asyncio.sleep(30)
        return {"slow_x": 1}


class Late(AsyncSampler):
    """Answers just after the sample's deadline (90 % of the cadence), every tick."""

    name = "late"

    async def sample(self) -> Fields:
        await asyncio.sleep(0.095)
        return {"late_x": 1}


class Vanishing(Sampler):
    name = "gone"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def sample(self) -> Fields:
        self.calls += 1
        raise Unavailable("not on this host")


class Junk(Sampler):
    """NaN, a field another sampler already gave, and a partly absent source."""

    name = "junk"

    def sample(self) -> Fields:
        self.absent("junk.part", "unsupported here")
        return {"nan_x": float("nan"), "good_x": 99, "junk_y": 2.5}


def _run(
    samplers: list[Any], spool_path: Path, seconds: float, flush_at: float | None = None
) -> Sidecar:
    spool = Spool(spool_path)
    sidecar = Sidecar(
        samplers,
        spool,
        Clock.start(),
        CADENCE_MS,
        header={"devices": []},
        unavailable=[("gpu", "NVML did not initialise")],
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(seconds, sidecar.request_stop)
        if flush_at is not None:
            loop.call_later(flush_at, sidecar.request_flush)
        await sidecar.run()

    try:
        asyncio.run(main())
    finally:
        spool.close()
    return sidecar


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_failing_samplers_cost_only_their_own_fields(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hanging, vanishing = Hanging(), Vanishing()
    spool = tmp_path / "spool.jsonl"
    try:
        sidecar = _run(
            [Good(), Crashing(), hanging, SlowAsync(), vanishing, Junk(), Late()],
            spool,
            seconds=1.05,
        )
    finally:
        hanging.release.set()
    rows = _rows(spool)
    samples = [r for r in rows if r["kind"] == "sample" and "good_x" in r]
    late_rows = [r for r in rows if r["kind"] == "sample" and "good_x" not in r]
    assert 9 <= len(samples) <= 12
    for r in samples:
        assert r["good_x"] == 1  # the first source of a field wins
        assert r["junk_y"] == 2.5
        assert "nan_x" not in r and "hang_x" not in r and "slow_x" not in r
    # the schedule held despite a hung thread and a slow network read in every tick (a
    # loaded CI host may delay one tick, never the schedule)
    gaps = [(b["t_ns"] - a["t_ns"]) / 1e6 for a, b in itertools.pairwise(samples)]
    assert statistics.median(gaps) == pytest.approx(CADENCE_MS, abs=0.1 * CADENCE_MS)
    assert max(gaps) < 2.5 * CADENCE_MS
    unavailable = [(r["source"], r["reason"]) for r in rows if r["kind"] == "unavailable"]
    assert sorted(unavailable) == [
        ("gone", "not on this host"),
        ("gpu", "NVML did not initialise"),
        ("junk.part", "unsupported here"),
    ]
    assert vanishing.calls == 1  # an unavailable source is not asked again
    assert hanging.calls == 1  # a stuck read is not piled up
    assert sidecar.errors["crash"]["count"] == len(samples)
    assert sidecar.errors["crash"]["first"] == "RuntimeError: boom"
    # a read still running at the next tick is a failure (logged once); the first tick
    # only waits for it
    assert sidecar.errors["slow"]["count"] == len(samples) - 1
    assert sidecar.errors["hang"]["count"] == len(samples) - 1
    # a late answer is kept, in a row of its own stamped with its tick
    ticks = {r["t_ns"] for r in samples}
    assert late_rows and all(r.keys() == {"kind", "t_ns", "late_x"} for r in late_rows)
    assert all(r["t_ns"] in ticks for r in late_rows)
    assert len({r["t_ns"] for r in late_rows}) == len(late_rows)
    assert sidecar.late_results["late"] == len(late_rows)
    for name in ("crash", "slow", "hang"):  # each failure logged once
        assert sum(f"sampler {name} failed" in r.getMessage() for r in caplog.records) == 1
    meta = [r for r in rows if r["kind"] == "meta"][-1]
    assert meta["samples"] == len(samples) and meta["errors"]["crash"]["count"] == len(samples)


def test_flush_samples_at_once_and_marks_the_spool(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    _run([Good()], spool, seconds=0.6, flush_at=0.35)
    rows = _rows(spool)
    i = next(i for i, r in enumerate(rows) if r["kind"] == "flush")
    assert rows[i - 1]["kind"] == "meta" and rows[i - 2]["kind"] == "sample"
    # the flush sample is taken off-schedule, right at the request
    flush_sample = rows[i - 2]["t_ns"]
    scheduled = [r["t_ns"] for r in rows[: i - 2] if r["kind"] == "sample"]
    assert 0 < (flush_sample - scheduled[-1]) / 1e6 < CADENCE_MS
    assert rows[i]["t_ns"] >= flush_sample
    assert any(r["kind"] == "sample" for r in rows[i + 1 :])  # sampling goes on


def test_meta_records_cost_and_cadence(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    _run([Good()], spool, seconds=0.5)
    metas = [r for r in _rows(spool) if r["kind"] == "meta"]
    assert len(metas) >= 2  # at start and at exit
    last = metas[-1]
    assert last["cadence_ms"] == CADENCE_MS
    assert last["wall_s"] >= 0.45 and last["cpu_s"] >= 0 and last["late_ticks"] == 0
    assert 0 <= last["cpu_pct"] < 100


def test_non_positive_cadence_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cadence"):
        Sidecar([], Spool(tmp_path / "s.jsonl"), Clock.start(), 0, header={})


def test_a_spool_of_an_earlier_run_is_moved_aside(tmp_path: Path) -> None:
    spool = tmp_path / "spool.jsonl"
    spool.write_text('{"kind": "sample", "t_ns": 1}\n')
    _run([Good()], spool, seconds=0.25)
    assert all(r["t_ns"] != 1 for r in _rows(spool))
    (aside,) = tmp_path.glob("spool.jsonl.*.prev")
    assert _rows(aside) == [{"kind": "sample", "t_ns": 1}]
