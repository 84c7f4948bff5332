"""Percentiles, the exact order-statistic bootstrap, CIs, correlations and the resampler."""

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


def test_bootstrap_percentiles_match_brute_force_resampling():
    rng = np.random.default_rng(1)
    x = np.sort(rng.lognormal(3, 0.5, 300))
    qs = [0.5, 0.99, 0.95]
    fast = stats.bootstrap_percentiles(x, qs, 20000, np.random.default_rng(2))
    resamples = np.sort(x[np.random.default_rng(3).integers(0, 300, (20000, 300))], axis=1)
    brute = np.stack([resamples[:, stats.rank(300, q) - 1] for q in qs], axis=1)
    np.testing.assert_allclose(fast.mean(axis=0), brute.mean(axis=0), rtol=0.02)
    np.testing.assert_allclose(fast.std(axis=0), brute.std(axis=0), rtol=0.05)
    # drawn jointly: percentiles of one resample are correlated as in brute force
    np.testing.assert_allclose(np.corrcoef(fast.T), np.corrcoef(brute.T), atol=0.04)


def test_percentile_ci_covers_the_true_quantile():
    rng = np.random.default_rng(4)
    true_p95 = math.exp(0.5 * 1.6448536269514722)
    hits = 0
    for _ in range(200):
        x = np.sort(rng.lognormal(0, 0.5, 400))
        lo, hi = stats.ci(stats.bootstrap_percentiles(x, [0.95], 1000, rng)[:, 0])
        hits += lo <= true_p95 <= hi
    assert 0.88 <= hits / 200 <= 0.99


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


def test_resampler_draws_each_stratum_from_its_own_runs_reproducibly():
    strata = ["a", "a", "b", "b", "b"]
    r1, r2 = stats.Resampler(strata, size=500), stats.Resampler(strata, size=500)
    np.testing.assert_array_equal(r1.idx, r2.idx)
    assert r1.labels == ["a", "b"]
    assert set(np.unique(r1.idx[:, :2])) == {0, 1}
    assert set(np.unique(r1.idx[:, 2:])) == {2, 3, 4}
    per_point = r1.by_stratum(r1.fixed([10, 20, 100, 200, 300]))
    assert per_point.shape == (500, 2)
    assert per_point[:, 0].min() >= 10 and per_point[:, 0].max() <= 20
    assert per_point[:, 1].mean() == pytest.approx(200, rel=0.05)


def test_resampler_means_and_percentiles_follow_the_chosen_run():
    samples = [np.full(50, 1.0), np.full(50, 5.0)]
    r = stats.Resampler(["x", "y"], size=100)
    np.testing.assert_array_equal(r.means(samples), np.tile([1.0, 5.0], (100, 1)))
    np.testing.assert_array_equal(
        r.percentiles(samples, [0.99])[..., 0], np.tile([1.0, 5.0], (100, 1))
    )
