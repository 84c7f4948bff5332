"""The G1<->G2 link shares its bandwidth among concurrent transfers."""

from __future__ import annotations

import pytest

from spark_harness.sim.link import SharedLink


def test_one_transfer_takes_bytes_over_bandwidth() -> None:
    link = SharedLink(1e9)
    t = link.start(1e6, now=10.0)
    assert link.next_completion() == pytest.approx(10.001)
    link.advance(10.0009)
    assert t.done_at is None
    link.advance(10.002)
    assert t.done_at == pytest.approx(10.001)
    assert link.busy == 0 and link.next_completion() is None


def test_concurrent_transfers_share_the_bandwidth() -> None:
    link = SharedLink(1e9)
    a = link.start(1e6, now=0.0)
    b = link.start(1e6, now=0.0)
    link.advance(1.0)
    # two equal transfers at half rate each end together, after twice the time
    assert a.done_at == pytest.approx(0.002)
    assert b.done_at == pytest.approx(0.002)


def test_a_late_small_transfer_slows_the_first_one() -> None:
    link = SharedLink(1e9)
    big = link.start(2e6, now=0.0)
    link.advance(0.001)  # 1 MB left
    small = link.start(0.5e6, now=0.001)  # both at 0.5 GB/s from here
    link.advance(1.0)
    assert small.done_at == pytest.approx(0.002)
    # big: 0.5 MB in the shared ms, then its last 0.5 MB alone at full rate
    assert big.done_at == pytest.approx(0.0025)


def test_zero_byte_transfer_is_done_at_once() -> None:
    link = SharedLink(1e9)
    t = link.start(0, now=3.0)
    assert t.done_at == 3.0 and link.busy == 0
