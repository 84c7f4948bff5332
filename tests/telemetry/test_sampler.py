"""Counter arithmetic shared by the samplers: wraps, resets, short intervals."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spark_harness.telemetry.sampler import MIN_INTERVAL_S, Rate, counter_delta

U32 = 1 << 32


def test_counter_delta_plain_increase() -> None:
    assert counter_delta(100, 250) == 150
    assert counter_delta(7, 7) == 0


def test_counter_delta_wraps_at_32_bits() -> None:
    assert counter_delta(U32 - 100, 150, (32,)) == 250


def test_counter_delta_wraps_at_64_bits_when_too_big_for_32() -> None:
    assert counter_delta((1 << 64) - 10, 5, (32, 64)) == 15


def test_counter_delta_reset_is_none() -> None:
    # device re-attached: counters start again near zero, far from any wrap point
    assert counter_delta(44_967, 12, (32, 64)) is None
    assert counter_delta(U32 // 2, 10, (32,)) is None


@given(prev=st.integers(0, U32 - 1), d=st.integers(0, (U32 >> 2) - 1))
def test_counter_delta_recovers_any_small_step_across_a_32_bit_wrap(prev: int, d: int) -> None:
    assert counter_delta(prev, (prev + d) % U32, (32,)) == d


def test_rate_first_read_gives_nothing_then_rates() -> None:
    r = Rate()
    assert r.update({"a": 10, "b": 0}, t=100.0) is None
    assert r.update({"a": 30, "b": 5}, t=102.0) == {"a": 10.0, "b": 2.5}


def test_rate_keeps_its_base_over_too_short_intervals() -> None:
    r = Rate()
    r.update({"a": 0}, t=10.0)
    assert r.update({"a": 1}, t=10.0 + MIN_INTERVAL_S / 2) is None
    # the next rate spans the whole time since the kept base
    assert r.update({"a": 10}, t=11.0) == {"a": 10.0}


def test_rate_reset_gives_no_rate_and_rebases() -> None:
    r = Rate()
    r.update({"a": 1_000_000}, t=0.0)
    assert r.update({"a": 3}, t=1.0) is None
    assert r.update({"a": 13}, t=2.0) == {"a": 10.0}
