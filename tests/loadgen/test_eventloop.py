"""The poll gap: the loop waits out the rest of a gap begun by its last wake, never past a
timer's timeout nor while callbacks are ready, and only where reads carry kernel stamps;
against a server writing every event apart, reads then hold several events each, and
each record stays exact or says by how much it may be late."""

from __future__ import annotations

import asyncio
import socket

import pytest

from spark_harness.loadgen import eventloop, kstamp
from spark_harness_testkit.groundtruth import TruthConfig, TruthServer, compare

from .conftest import endpoint, run_as_measured, spec

GAP = 250_000


class Clock:
    """``time.monotonic_ns`` and ``time.sleep`` for the selector: time moves only when
    told to, or by the sleeps it records."""

    def __init__(self) -> None:
        self.now = 10**12
        self.sleeps: list[float] = []

    def monotonic_ns(self) -> int:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += round(s * 1e9)


@pytest.fixture
def selector(monkeypatch: pytest.MonkeyPatch):
    clock = Clock()
    monkeypatch.setattr(eventloop.time, "monotonic_ns", clock.monotonic_ns)
    monkeypatch.setattr(eventloop.time, "sleep", clock.sleep)
    sel = eventloop.GappedSelector(GAP)
    yield sel, clock
    sel.close()


def test_a_poll_right_after_a_wake_waits_out_the_gap(selector) -> None:
    sel, clock = selector
    sel.select(0)  # a wake
    clock.now += 100_000
    sel.select(1.0)
    assert clock.sleeps == [pytest.approx(150e-6)]


def test_the_first_poll_and_one_after_a_quiet_spell_do_not_wait(selector) -> None:
    sel, clock = selector
    sel.select(0.0005)  # the first: nothing to wait out (it polls for its timeout)
    clock.now += 2 * GAP
    sel.select(0.0005)
    assert clock.sleeps == []


def test_ready_callbacks_are_not_held_up(selector) -> None:
    """asyncio polls with timeout 0 while callbacks are ready: no wait then."""
    sel, clock = selector
    sel.select(0)
    sel.select(0)
    assert clock.sleeps == []


def test_a_timer_due_within_the_gap_keeps_its_time(selector) -> None:
    sel, clock = selector
    sel.select(0)
    sel.select(50e-6)  # the loop's next timer is due in 50 µs
    assert clock.sleeps == [pytest.approx(50e-6)]


def test_data_that_arrived_during_the_wait_is_returned() -> None:
    a, b = socket.socketpair()
    with a, b, eventloop.GappedSelector(GAP) as sel:
        sel.register(a, eventloop.selectors.EVENT_READ)
        assert sel.select(0) == []
        b.send(b"x")
        assert [key.fileobj for key, _ in sel.select(1.0)] == [a]


def test_the_gap_only_where_reads_carry_the_kernels_stamps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TLS reads keep the loop's own time: a gap would be added to each of their stamps."""
    assert eventloop.gap_for("https://127.0.0.1:8443") == 0
    expected = eventloop.POLL_GAP_NS if kstamp.KERNEL_STAMPS else 0
    assert eventloop.gap_for("http://127.0.0.1:8000") == expected
    monkeypatch.setattr(kstamp, "KERNEL_STAMPS", False)
    assert eventloop.gap_for("http://127.0.0.1:8000") == 0


def test_run_returns_and_raises_as_asyncio_run_does() -> None:
    async def answer() -> int:
        await asyncio.sleep(0.001)
        return 42

    async def fail() -> None:
        raise ValueError("planted")

    assert eventloop.run(answer(), GAP) == 42
    assert eventloop.run(answer(), 0) == 42
    with pytest.raises(ValueError, match="planted"):
        eventloop.run(fail(), GAP)


@pytest.mark.parametrize("gap_ns", [0, GAP])
def test_what_the_process_held_is_frozen_while_the_load_runs(gap_ns: int) -> None:
    """A full collection would traverse it and hold the loop that long; afterwards it is
    thawed (its garbage collectable again), and a caller's own freeze is left alone."""
    import gc

    async def frozen() -> int:
        return gc.get_freeze_count()

    assert gc.get_freeze_count() == 0
    assert eventloop.run(frozen(), gap_ns) > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        held = gc.get_freeze_count()
        assert eventloop.run(frozen(), gap_ns) == held
        assert gc.get_freeze_count() == held
    finally:
        gc.unfreeze()


@pytest.mark.skipif(not kstamp.KERNEL_STAMPS, reason="the gap is off without kernel stamps")
def test_a_server_faster_than_the_gap_gets_reads_of_several_events_and_exact_records() -> None:
    """Planted: a server with no delay writing each event apart (8 streams of 64 tokens).
    Reads then hold several events, the token counts stay exact, and every first token is
    either exactly stamped or carries the bound that covers the truth."""
    workload = {"kind": "fixed_context", "context_tokens": 64, "output_tokens": 64, "nonce": True}
    point = spec(workload, {"kind": "closed", "users": 8}, warmup_s=0.2, load_s=1.0)
    with TruthServer(TruthConfig(ttft_ms=0, itl_ms=0)) as srv:
        out = run_as_measured(endpoint(srv.base_url), point)
        truth = srv.truth()
    recs = out.phase("load")
    assert len(recs) >= 8 and all(r["ok"] for r in recs)
    assert all(r["completion_tokens_client"] == 64 for r in recs)
    # events share stamps: reads held several events (a read per event gives 64 stamps)
    distinct = [len(set(r["event_offsets_ms"])) for r in recs]
    assert sum(distinct) / len(distinct) < 16
    for p in compare(recs, truth):
        err = p["ttft_ms"] - p["true_ttft_ms"]
        assert err <= p["first_token_bound_ms"] + p["sent_bound_ms"] + p["server_write_ms"] + 5
