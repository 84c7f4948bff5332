"""Percentiles, CIs with the repetition as the unit, correlations and the resampler."""

import math

import numpy as np
import pytest

from spark_harness.analysis import stats


def test_percentile_is_the_inverted_cdf_order_statistic():
    x = np.arange(1.0, 101.0)
    assert stats.percentile(x, 0.5) == 50
    assert stats.percentile(x, 0.99) == 99
    assert stats.percentile(x, 1.0) == 100
    assert stats.percentile(np.array([7.0]), 0.99) == 7
    assert math.isnan(stats.percentile(np.empty(0), 0.5))


def test_ci_refuses_mostly_undefined_replicates():
    assert stats.ci(np.array([np.nan] * 50 + [1.0] * 50)) is None
    assert stats.ci(np.arange(100.0)) == pytest.approx((2.475, 96.525))


def test_pearson_spearman_slope_against_known_values():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert stats.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert stats.slope(x, 2 * x + 1) == pytest.approx(2.0)
    assert stats.spearman(x, np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(0.8)
    assert stats.spearman(x, x**3) == pytest.approx(1.0)
    assert math.isnan(stats.pearson(x, np.ones(4)))
    assert math.isnan(stats.slope(np.ones(4), x))
    rows = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    np.testing.assert_allclose(stats.pearson(rows, np.array([[1.0, 2.0, 3.0]] * 2)), [1, -1])


def test_average_ranks_share_ties():
    r = stats.average_ranks(np.array([[3.0, 1.0, 2.0, 2.0], [5.0, 5.0, 5.0, 1.0]]))
    np.testing.assert_array_equal(r, [[4, 1, 2.5, 2.5], [3, 3, 3, 1]])


def test_resampler_draws_each_points_runs_reproducibly():
    strata = ["a", "b", "a", "b", "b"]
    r1, r2 = stats.Resampler(strata, size=500), stats.Resampler(strata, size=500)
    np.testing.assert_array_equal(r1.idx, r2.idx)
    values = [10.0, 100.0, 20.0, 200.0, 300.0]
    np.testing.assert_array_equal(r1.fixed(values), r2.fixed(values))
    assert r1.labels == ["a", "b"]
    assert set(np.unique(r1.idx[:, [0, 2]])) == {0, 2}
    assert set(np.unique(r1.idx[:, [1, 3, 4]])) == {1, 3, 4}
    per_point = r1.by_stratum(r1.fixed(values))
    assert per_point.shape == (500, 2)
    assert np.median(per_point, axis=0) == pytest.approx([15, 200], rel=0.1)


def test_point_replicates_are_the_t_interval_on_repetitions():
    v = np.array([10.0, 12.0, 17.0])
    r = stats.Resampler(["p"] * 3, size=200_000)
    lo, hi = stats.ci(r.by_stratum(r.fixed(v))[:, 0])
    half = 4.302652729911275 * v.std(ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert (lo, hi) == pytest.approx((v.mean() - half, v.mean() + half), rel=0.02)
    # the same interval for a point on its own, not one run's slot (which is wider)
    assert stats.ci(stats.mean_replicates(v)) == pytest.approx((lo, hi), rel=0.03)
    assert stats.ci(r.fixed(v)[:, 0])[1] > hi + 0.05 * half


def test_quantities_of_a_point_share_their_draws():
    """A ratio of two quantities of one point varies with their joint spread: constant
    when they move together, and a paired difference is the t-interval of the pairs."""
    r = stats.Resampler(["p"] * 4, size=50_000)
    a, b = np.array([10.0, 20.0, 30.0, 40.0]), np.array([11.0, 19.0, 33.0, 41.0])
    ratio = r.by_stratum(r.fixed(2 * a)) / r.by_stratum(r.fixed(a))
    np.testing.assert_allclose(ratio, 2.0)
    d = b - a
    lo, hi = stats.ci(r.by_stratum(r.fixed(b) - r.fixed(a))[:, 0])
    half = 3.182446305284263 * d.std(ddof=1) / 2  # t_{0.975, 3}
    assert (lo, hi) == pytest.approx((d.mean() - half, d.mean() + half), rel=0.03)


def test_two_sample_contrasts_are_pooled_t_intervals():
    a, b = np.array([10.0, 12.0, 17.0]), np.array([20.0, 21.0, 26.0])
    sp = math.sqrt(((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()) / 2
    t4 = 2.7764451051977987  # t_{0.975, 4}
    for wa, wb in ((1.0, -1.0), (0.5, 0.5), (0.5, -0.5)):
        c = wa * a.mean() + wb * b.mean()
        half = t4 * sp * math.sqrt((wa**2 + wb**2) / 3)
        lo, hi = stats.ci(stats.two_sample_replicates(a, b, wa, wb, size=200_000))
        assert (lo, hi) == pytest.approx((c - half, c + half), rel=0.01, abs=0.05)


def test_a_single_repetition_gives_no_ci():
    r = stats.Resampler(["p", "q", "q"], size=100)
    per_point = r.by_stratum(r.fixed([5.0, 1.0, 2.0]))
    assert stats.ci(per_point[:, 0]) is None
    assert stats.ci(per_point[:, 1]) is not None
    assert np.all(np.isnan(stats.two_sample_replicates(np.array([5.0]), np.array([1.0, 2.0]))))
    assert np.all(np.isnan(stats.ratio_replicates(np.array([5.0]), np.array([1.0, 2.0]))))


def test_resampler_means_and_percentiles_are_per_run_values():
    samples = [np.arange(1.0, 101.0), np.arange(2.0, 202.0, 2.0)] * 2
    r = stats.Resampler(["x", "x", "y", "y"], size=100)
    means = r.by_stratum(r.means(samples))
    np.testing.assert_allclose(np.median(means, axis=0), [75.75, 75.75], rtol=0.1)
    p99 = r.percentiles(samples, [0.99])[..., 0]
    np.testing.assert_array_equal(p99, r.fixed([99.0, 198.0, 99.0, 198.0]))


def test_across_run_slope_moves_with_the_points_uncertainty():
    """Runs within a point are redrawn and each point moves by its own t draw: a slope
    over runs gets a CI; x constant within points stays fixed."""
    x = np.repeat([1.0, 2.0, 3.0], 3)
    y = 2 * x + np.tile([-0.1, 0.0, 0.1], 3)
    r = stats.Resampler(list(x), size=2000)
    np.testing.assert_array_equal(r.fixed(x), np.broadcast_to(x, (2000, 9)))
    lo, hi = stats.ci(stats.slope(r.fixed(x), r.fixed(y)))
    assert lo < 2.0 < hi and hi - lo < 0.5


def test_mser_drops_a_warm_up_and_flags_a_series_that_never_settles():
    x = np.random.default_rng(0).lognormal(0, 0.3, 400)
    assert stats.mser_truncation(x) == (0, True)
    warm = x * np.where(np.arange(400) < 80, np.linspace(4, 1, 400)[:80].max(), 1.0)
    cut, settled = stats.mser_truncation(warm)
    assert 80 <= cut <= 100 and settled
    assert stats.mser_truncation(x * np.exp(np.linspace(3, 0, 400))) == (200, False)
    assert stats.mser_truncation(x[:9]) == (0, None)


def test_across_run_intervals_are_regression_t_and_fisher_z():
    rng = np.random.default_rng(5)
    x = np.repeat(np.arange(1.0, 6.0), 3)
    y = 3 * x + rng.normal(0, 2, 15)
    b = stats.slope(x, y)
    resid = y - y.mean() - b * (x - x.mean())
    se = math.sqrt((resid**2).sum() / 13 / ((x - x.mean()) ** 2).sum())
    half = 2.1603686564610127 * se  # t_{0.975, 13}
    lo, hi = stats.ci(stats.slope_replicates(x, y, size=200_000))
    assert (lo, hi) == pytest.approx((b - half, b + half), rel=0.01)
    r = stats.pearson(x, y)
    lo, hi = stats.ci(stats.pearson_replicates(x, y, size=200_000))
    z = 1.959963984540054 / math.sqrt(12)
    assert (lo, hi) == pytest.approx(
        (math.tanh(math.atanh(r) - z), math.tanh(math.atanh(r) + z)), rel=0.01
    )
    lo, hi = stats.ci(stats.pearson_replicates(x, y, size=200_000, controls=2))
    z = 1.959963984540054 / math.sqrt(10)  # a partial correlation: one df per control
    assert (lo, hi) == pytest.approx(
        (math.tanh(math.atanh(r) - z), math.tanh(math.atanh(r) + z)), rel=0.01
    )
    y_gap = y.copy()
    y_gap[4] = np.nan  # missing evidence: no CI, never a guess
    assert stats.ci(stats.slope_replicates(x, y_gap)) is None
    assert stats.ci(stats.spearman_replicates(x[:3], y[:3])) is None


# ------------------------------------------------------------------- coverage
#: Requests per run, lognormal sigma of TTFT (a skewed, long-tailed distribution),
#: simulated experiments, repetitions per point.
REQUESTS, SIGMA, EXPERIMENTS, REPS = 300, 0.5, 1000, 3


def _p99_runs(rng: np.random.Generator, spread: float, runs: int = REPS) -> np.ndarray:
    """Per-run p99 of (EXPERIMENTS, runs) runs: requests drawn within each run, the run
    scaled by a planted between-repetition factor 1 + spread * N(0, 1)."""
    ttft = np.exp(SIGMA * rng.standard_normal((EXPERIMENTS, runs, REQUESTS)))
    p99 = np.sort(ttft, axis=-1)[..., stats.rank(REQUESTS, 0.99) - 1]
    return p99 * (1 + spread * rng.standard_normal((EXPERIMENTS, runs)))


def _expected_p99(rng: np.random.Generator) -> float:
    """The truth: the expected per-run p99 (the order statistic of 300 requests reads
    ~5 % below the population p99; that bias is the run's, not the repetitions')."""
    ttft = np.sort(np.exp(SIGMA * rng.standard_normal((20_000, REQUESTS))), axis=-1)
    return float(ttft[:, stats.rank(REQUESTS, 0.99) - 1].mean())


@pytest.mark.parametrize("spread", [0.05, 0.10])
def test_ci_coverage_with_the_repetition_as_the_unit(spread):
    """95 % CIs of a point's p99 and of the difference (and ratio) of two points cover
    the truth in 93-97 % of 1,000 simulated experiments with 3 repetitions each.

    The old two-level bootstrap (repetitions, then requests within each run), same
    simulation (1,000 experiments, requests independent within a run, which favours
    it): point 98.1 % / 94.6 % and difference 98.9 % / 97.2 % at 5 % / 10 % spread
    with 3 repetitions; 96.3 % / 91.0 % and 98.5 % / 95.1 % with 2. Its level
    depended on how the within-run noise compared with the spread between repetitions
    (issue 14 measured 76 % / 67 % with 2 repetitions where the latter dominated).
    """
    rng = np.random.default_rng(14)
    truth = _expected_p99(rng)
    a, b = _p99_runs(rng, spread), _p99_runs(rng, spread) * 1.3
    res = stats.Resampler(np.repeat(np.arange(EXPERIMENTS), REPS))
    point = res.by_stratum(res.fixed(a.ravel()))
    lo, hi = np.quantile(point, [0.025, 0.975], axis=0)
    assert 0.93 <= np.mean((lo <= truth) & (truth <= hi)) <= 0.97
    diff = stats.two_sample_replicates(b, a)
    lo, hi = np.quantile(diff, [0.025, 0.975], axis=0)
    assert 0.93 <= np.mean((lo <= 0.3 * truth) & (0.3 * truth <= hi)) <= 0.97
    lo, hi = np.quantile(stats.ratio_replicates(b, a), [0.025, 0.975], axis=0)
    assert 0.93 <= np.mean((lo <= 1.3) & (hi >= 1.3)) <= 0.97


@pytest.mark.parametrize("factors", [(1.3,), (1.0,), (1.3, 1.1), (1.0, 1.0)])
def test_max_abs_change_covers_and_holds_its_estimate(factors):
    """max_i |p99_i / p99_0 - 1| over k profiles (H4A's p99 change, H0's parity), 3
    repetitions each, 10 % spread: its CI covers the true maximum in at least 93 % of
    1,000 experiments (Bonferroni over k: >= 95 % expected) and always holds its own
    estimate. The percentile CI of the replicates' maximum, used before, never covered a
    true change of 0 (its lower end is above 0: |x| of replicates centred on 0 is rarely
    0) and missed its own estimate in 2-4 % of experiments; elsewhere it covered 96-97 %
    (new: 95.5 % at k = 1, 96-98 % at k = 2)."""
    rng = np.random.default_rng(16)
    base = _p99_runs(rng, 0.10)
    arms = [_p99_runs(rng, 0.10) * f for f in factors]
    est = np.stack([arm.mean(axis=1) / base.mean(axis=1) - 1 for arm in arms], axis=1)
    reps = np.stack([stats.ratio_replicates(arm, base) - 1 for arm in arms], axis=2)
    truth = max(abs(f - 1) for f in factors)
    covered, inside, old_covered = [], [], []
    for e in range(EXPERIMENTS):
        value, (lo, hi) = stats.max_abs(est[e], reps[:, e, :])
        covered.append(lo <= truth <= hi)
        inside.append(lo <= value <= hi)
        old_lo, old_hi = stats.ci(np.abs(reps[:, e, :]).max(axis=1))
        old_covered.append(old_lo <= truth <= old_hi)
    assert all(inside)
    assert np.mean(covered) >= 0.93
    if truth == 0:
        assert np.mean(old_covered) < 0.5  # the old interval: 0 %


@pytest.mark.parametrize("factors", [(1.09, 1.09, 1.09), (1.0, 1.05), (1.2,)])
def test_max_signed_covers_the_largest_of_several_rises(factors):
    """max_i (y_i / y_0 - 1) over k points (H2A's reads over idle across contexts), 3
    repetitions each, 10 % spread: its CI covers the true maximum in at least 93 % of
    1,000 experiments. With k equal rises (9 % at three contexts) the replicates' own
    maximum is biased up: its CI's lower end lay above the truth in 6.4 % of them, more
    than twice the 2.5 % a 95 % CI allows on that side."""
    rng = np.random.default_rng(17)
    base = _p99_runs(rng, 0.10)
    arms = [_p99_runs(rng, 0.10) * f for f in factors]
    est = np.stack([arm.mean(axis=1) / base.mean(axis=1) - 1 for arm in arms], axis=1)
    reps = np.stack([stats.ratio_replicates(arm, base) - 1 for arm in arms], axis=2)
    truth = max(f - 1 for f in factors)
    covered, old_above = [], []
    for e in range(EXPERIMENTS):
        value, (lo, hi) = stats.max_signed(est[e], reps[:, e, :])
        assert value == est[e].max()
        covered.append(lo <= truth <= hi)
        old_above.append(stats.ci(reps[:, e, :].max(axis=1))[0] > truth)
    assert np.mean(covered) >= 0.93
    if len(factors) == 3:
        assert np.mean(old_above) > 0.05


@pytest.mark.parametrize("spread", [0.05, 0.10])
def test_slope_ci_coverage_over_runs(spread):
    """A sweep of 5 points x 3 repetitions whose expected p99 is 100 + 10 x: the 95 % CI
    of the OLS slope over runs covers 10 in 93-97 % of 1,000 experiments. (Combining
    the points' own t replicates instead covered 99.5 %: far too wide.)"""
    rng = np.random.default_rng(15)
    x = np.repeat(np.arange(1.0, 6.0), REPS)
    runs = _p99_runs(rng, spread, x.size) / _expected_p99(rng) * (100 + 10 * x)
    lo, hi = np.quantile(stats.slope_replicates(x, runs), [0.025, 0.975], axis=0)
    assert 0.93 <= np.mean((lo <= 10) & (hi >= 10)) <= 0.97


def test_correlation_difference_has_zous_coverage_and_decides_planted_gaps() -> None:
    """Two correlations sharing y: Zou's interval covers the true difference ~95 % of the
    time (20 runs, true r 0.7 vs 0.2, predictors correlated 0.3) and excludes 0 there."""
    rng = np.random.default_rng(7)
    cov = np.array([[1.0, 0.7, 0.2], [0.7, 1.0, 0.3], [0.2, 0.3, 1.0]])  # y, x1, x2
    hits, decided = 0, 0
    for _ in range(1000):
        y, x1, x2 = rng.multivariate_normal(np.zeros(3), cov, 20).T
        _, (lo, hi) = stats.correlation_difference(y, x1, x2)
        hits += lo <= 0.5 <= hi
        decided += lo > 0
    assert 0.93 <= hits / 1000 <= 0.97
    assert decided / 1000 > 0.5  # a 0.5 gap is usually resolved with 20 runs
    assert stats.correlation_difference(np.arange(3.0), np.arange(3.0), np.ones(3))[1] is None


def test_centered_within_removes_each_groups_level():
    """Two groups whose levels alone correlate x and y (r = -1 pooled), with no relation
    inside either: centred within groups, r is that of the noise, near 0."""
    rng = np.random.default_rng(11)
    groups = ["a"] * 20 + ["b"] * 20
    x = np.r_[np.zeros(20), np.full(20, 30.0)] + rng.normal(0, 1, 40)
    y = np.r_[np.full(20, 100.0), np.full(20, 40.0)] + rng.normal(0, 1, 40)
    assert stats.pearson(x, y) < -0.99
    xc, yc = stats.centered_within(x, groups), stats.centered_within(y, groups)
    assert abs(stats.pearson(xc, yc)) < 0.3
    assert np.allclose(xc[:20].mean(), 0) and np.allclose(yc[20:].mean(), 0)
    # replicates (leading axes) are centred run by run
    both = stats.centered_within(np.stack([x, 2 * x]), groups)
    assert np.allclose(both[1], 2 * xc)
