"""Open-loop schedules: absolute offsets with the planned rate and burstiness."""

from __future__ import annotations

import statistics
from itertools import islice, pairwise

import pytest

from spark_harness.loadgen.schedule import arrivals, schedule


def gaps(offsets: list[int]) -> list[float]:
    return [(b - a) / 1e9 for a, b in pairwise(offsets)]


def test_constant_rate_is_exact_and_does_not_drift() -> None:
    offs = list(islice(arrivals("constant", 300.0, seed=1), 300_001))
    assert offs[:4] == [0, 3_333_333, 6_666_667, 10_000_000]
    assert offs[-1] == 1_000_000_000_000  # 1000 s later, to the nanosecond


@pytest.mark.parametrize(
    ("kind", "burstiness", "cv"), [("poisson", 1.0, 1.0), ("gamma", 0.25, 2.0), ("gamma", 4.0, 0.5)]
)
def test_random_gaps_have_the_planned_mean_and_variability(
    kind: str, burstiness: float, cv: float
) -> None:
    g = gaps(list(islice(arrivals(kind, 200.0, seed=3, burstiness=burstiness), 40_001)))
    mean = statistics.fmean(g)
    assert mean == pytest.approx(1 / 200.0, rel=0.03)
    assert statistics.stdev(g) / mean == pytest.approx(cv, rel=0.05)


def test_schedules_are_reproducible_by_seed_and_bounded_by_duration() -> None:
    a = schedule("poisson", 50.0, seed=9, duration_s=2.0)
    assert a == schedule("poisson", 50.0, seed=9, duration_s=2.0)
    assert a != schedule("poisson", 50.0, seed=10, duration_s=2.0)
    assert a[0] == 0 and all(x < 2e9 for x in a) and a == sorted(a)
    assert len(schedule("constant", 50.0, seed=0, duration_s=2.0)) == 100


@pytest.mark.parametrize(
    ("kind", "rate", "burstiness", "msg"),
    [
        ("closed", 1.0, 1.0, "not an open-loop kind"),
        ("poisson", 0, 1.0, "load.rate"),
        ("gamma", 5.0, 0.0, "load.burstiness"),
    ],
)
def test_bad_settings_are_named(kind: str, rate: float, burstiness: float, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        next(arrivals(kind, rate, seed=0, burstiness=burstiness))
