"""Statistics behind every verdict: percentiles, CIs with the repetition as the unit,
correlations and slopes.

Conventions (docs/ANALYSIS.md explains why):

- A percentile is the "inverted CDF" order statistic: ``pq = x_(ceil(q * n))`` of the sorted
  sample, computed per run. A point's value is the mean over its repetitions of the
  per-run value; the requests of one closed loop are never treated as independent.
- The unit is the repetition (docs/PLAN.md, Statistics). :class:`Resampler` draws
  replicates whose per-point mean is ``mean + s / sqrt(n) * t_(n-1)``, so a point's
  percentile interval IS the t-interval on its repetition values; all quantities share
  the draws, so ratios, maxima and paired differences inherit consistent replicates.
  The difference and the ratio of two points get the two-sample t-interval
  (:func:`two_sample_replicates`, :func:`ratio_replicates`); slopes and correlations
  over runs the regression-t and Fisher-z intervals (:data:`RUN_INTERVALS`).
- A run's analysed window starts after its warm-up (:func:`mser_truncation`).
- CIs are percentile intervals at :data:`CI_LEVEL` from :data:`RESAMPLES` replicates drawn
  with a fixed seed, so a verdict is reproducible bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from statistics import NormalDist

import numpy as np

#: Two-sided confidence level of every CI ("mean difference with 95 % CI", docs/PLAN.md).
CI_LEVEL = 0.95
#: Replicates per CI.
RESAMPLES = 2000
#: Seed of every replicate draw, so verdicts are reproducible.
SEED = 20261126
#: A CI is not reported when more than this share of replicates is undefined (e.g. a
#: correlation of a resample whose x values are all equal).
MAX_UNDEFINED_SHARE = 0.1


def rank(n: int, q: float) -> int:
    """1-based rank of the q-percentile of n sorted values (inverted CDF)."""
    return min(max(math.ceil(q * n - 1e-9), 1), n)


def percentile(sorted_x: np.ndarray, q: float) -> float:
    """The q-percentile (0 < q <= 1) of an ascending sample; NaN when empty."""
    n = len(sorted_x)
    return float(sorted_x[rank(n, q) - 1]) if n else math.nan


def ci(replicates: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """Percentile CI of replicates; None when too many are undefined."""
    r = np.asarray(replicates, dtype=float).ravel()
    finite = r[np.isfinite(r)]
    if len(r) == 0 or len(finite) < (1 - MAX_UNDEFINED_SHARE) * len(r):
        return None
    lo, hi = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


# ------------------------------------------------- vectorised over replicates
def _centered(a: np.ndarray) -> np.ndarray:
    return a - a.mean(axis=-1, keepdims=True)


def slope(x: np.ndarray, y: np.ndarray) -> np.ndarray | float:
    """OLS slope of y on x along the last axis (NaN where x does not vary)."""
    xc, yc = _centered(np.asarray(x, float)), _centered(np.asarray(y, float))
    sxx = (xc * xc).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sxx > 0, (xc * yc).sum(axis=-1) / np.where(sxx > 0, sxx, 1), np.nan)


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray | float:
    """Pearson correlation along the last axis (NaN where either side does not vary)."""
    xc, yc = _centered(np.asarray(x, float)), _centered(np.asarray(y, float))
    den = np.sqrt((xc * xc).sum(axis=-1) * (yc * yc).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (xc * yc).sum(axis=-1) / np.where(den > 0, den, 1), np.nan)


def average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, ties sharing their average rank."""
    a = np.asarray(a, dtype=float)
    flat = a.reshape(-1, a.shape[-1])
    n = flat.shape[1]
    order = np.argsort(flat, axis=1, kind="stable")
    s = np.take_along_axis(flat, order, axis=1)
    pos = np.broadcast_to(np.arange(n), s.shape)
    starts = np.ones_like(s, dtype=bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    ends = np.ones_like(s, dtype=bool)
    ends[:, :-1] = s[:, 1:] != s[:, :-1]
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    last = np.minimum.accumulate(np.where(ends, pos, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty_like(s)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=1)
    return ranks.reshape(a.shape)


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray | float:
    """Spearman rank correlation along the last axis."""
    return pearson(average_ranks(x), average_ranks(y))


def _simultaneous_cis(replicates: np.ndarray, level: float) -> list[tuple[float, float]] | None:
    """Each of k contrasts' percentile CI (replicates: (size, k)) at the Bonferroni level
    ``1 - (1 - level) / k``: together they cover every contrast at least ``level`` of
    the time. None if one has no CI."""
    reps = np.asarray(replicates, dtype=float).reshape(len(replicates), -1)
    k = reps.shape[1]
    out = []
    for j in range(k):
        c = ci(reps[:, j], 1 - (1 - level) / k)
        if c is None:
            return None
        out.append(c)
    return out


def max_signed(
    estimates: Sequence[float] | np.ndarray, replicates: np.ndarray, level: float = CI_LEVEL
) -> tuple[float, tuple[float, float] | None]:
    """``max_i theta_i`` of k contrasts (replicates: (size, k)) and its CI: from the
    largest lower end to the largest upper end of the contrasts' simultaneous CIs. It
    covers the maximum whenever every CI covers its own contrast; the percentile CI of
    the replicates' own maximum does not (the maximum of noisy contrasts is biased up,
    so its lower end lies above the true maximum far more than 5 % of the time)."""
    est = float(np.max(np.asarray(estimates, dtype=float)))
    cis = _simultaneous_cis(replicates, level)
    if cis is None:
        return est, None
    return est, (max(lo for lo, _ in cis), max(hi for _, hi in cis))


def max_abs(
    estimates: Sequence[float] | np.ndarray, replicates: np.ndarray, level: float = CI_LEVEL
) -> tuple[float, tuple[float, float] | None]:
    """``max_i |theta_i|`` of k signed contrasts (replicates: (size, k)) and its CI.

    Each contrast's simultaneous CI (:func:`_simultaneous_cis`) is folded at 0
    (``[0, max(-lo, hi)]`` where it spans 0, else its ends' absolute values), and the
    maximum's CI runs from the largest folded lower end to the largest folded upper end:
    it covers ``max_i |theta_i|`` whenever every contrast's CI covers its own, so at
    least ``level`` of the time, and holds the estimate. The percentile CI of the
    replicates' own maximum does not: near 0 its lower end lies above the estimate (|x|
    of replicates centred on 0 is rarely 0)."""
    est = np.abs(np.asarray(estimates, dtype=float))
    cis = _simultaneous_cis(replicates, level)
    if cis is None:
        return float(est.max()), None
    folded = [
        (0.0, max(-lo, hi)) if lo <= 0 <= hi else tuple(sorted((abs(lo), abs(hi))))
        for lo, hi in cis
    ]
    return float(est.max()), (max(f[0] for f in folded), max(f[1] for f in folded))


# ------------------------------------------------------------------ replicates
def _group_sums(a: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of the last axis's columns per group (columns ``order``-sorted into groups)."""
    return np.add.reduceat(a[..., order], starts, axis=-1)


class Resampler:
    """Replicates with the repetition as the unit, one set of draws for every quantity.

    ``strata`` holds one label per run (its point); slot i of a replicate belongs to run
    i's point. For a per-run value v, a point with n runs, mean m and sample SD s gets

    - the replicate mean ``m + sum_i Z_i (v_i - m) / sqrt(n V)`` with ``Z ~ N(0, 1)`` per
      run and ``V ~ chi2(n - 1)`` per point, i.e. exactly ``m + s / sqrt(n) * t_(n-1)``:
      the percentile interval of the replicates is the t-interval on the repetitions, and
      as ``Z`` and ``V`` are shared by every quantity, several quantities of a point vary
      jointly with their sample covariance (a ratio of two means, a paired difference);
    - per slot, a run of the point drawn with replacement, shifted so that the point's
      slots average to that replicate mean: a combination of per-run values (a ratio of
      sums over runs, a difference of two correlations) sees each point move by its own
      uncertainty and the runs within it reshuffled. Slopes and correlations over runs
      have their own intervals (:data:`RUN_INTERVALS`).

    A point with one run has no spread and gives NaN replicates (no CI).
    Arrays returned have shape (size, n_runs); :meth:`by_stratum` averages a point's slots.
    """

    def __init__(self, strata: Sequence[Hashable], size: int = RESAMPLES, seed: int = SEED):
        self.size = size
        rng = np.random.default_rng(seed)
        self.labels: list[Hashable] = list(dict.fromkeys(strata))
        code = {s: k for k, s in enumerate(self.labels)}
        self.slot_stratum = np.array([code[s] for s in strata], dtype=np.int64)
        self.n_runs = len(self.slot_stratum)
        self._order = np.argsort(self.slot_stratum, kind="stable")
        self._counts = np.bincount(self.slot_stratum, minlength=len(self.labels))
        self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]]).astype(np.int64)
        self.idx = np.empty((size, self.n_runs), dtype=np.int64)
        for k, n in enumerate(self._counts):
            runs = self._order[self._starts[k] : self._starts[k] + n]
            self.idx[:, runs] = runs[rng.integers(0, n, (size, n))]
        self._z = rng.standard_normal((size, self.n_runs))
        dof = np.maximum(self._counts - 1, 1)
        with np.errstate(divide="ignore"):
            scale = 1.0 / np.sqrt(self._counts * rng.chisquare(dof, (size, len(self.labels))))
        self._scale = np.where(self._counts > 1, scale, np.nan)

    def _point_means(self, a: np.ndarray) -> np.ndarray:
        """Mean of each point's columns along the last axis: (..., n_points)."""
        if self.n_runs == 0:
            return np.zeros((*a.shape[:-1], 0))
        return _group_sums(a, self._order, self._starts) / self._counts

    def fixed(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Replicates of a per-run value (a percentile, a telemetry mean): (size, n_runs)."""
        v = np.asarray(values, dtype=float)
        if self.n_runs == 0:
            return np.zeros((self.size, 0))
        m = self._point_means(v)
        dev = v - m[self.slot_stratum]
        target = m + _group_sums(self._z * dev, self._order, self._starts) * self._scale
        drawn = v[self.idx]
        return drawn + (target - self._point_means(drawn))[:, self.slot_stratum]

    def percentiles(self, samples: Sequence[np.ndarray], qs: Sequence[float]) -> np.ndarray:
        """Replicates of each run's percentiles of its sorted sample: (size, n_runs, len(qs))."""
        per_run = [[percentile(np.asarray(x), q) for x in samples] for q in qs]
        return np.stack([self.fixed(v) for v in per_run], axis=-1)

    def means(self, samples: Sequence[np.ndarray]) -> np.ndarray:
        """Replicates of each run's sample mean: (size, n_runs)."""
        return self.fixed([float(np.mean(x)) if len(x) else math.nan for x in samples])

    def by_stratum(self, per_slot: np.ndarray) -> np.ndarray:
        """Mean over each point's slots: (size, n_points) in ``labels`` order."""
        return self._point_means(per_slot)


def mean_replicates(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Replicates of the mean of ``values`` (repetitions of one point) whose percentile
    interval is the one-sample t-interval ``m ± t_(n−1) · s / sqrt(n)``: (size,). One
    run's replicate (a slot of :meth:`Resampler.fixed`) is not it: its redrawn value
    widens the interval."""
    v = np.asarray(values, dtype=float)
    return Resampler(["point"] * len(v)).fixed(v).mean(axis=-1)


def two_sample_replicates(
    a: np.ndarray,
    b: np.ndarray,
    wa: float = 1.0,
    wb: float = -1.0,
    size: int = RESAMPLES,
    seed: int = SEED,
) -> np.ndarray:
    """Replicates of the contrast ``wa·mean(a) + wb·mean(b)`` over the last axis (by
    default the difference a − b) whose percentile interval is the two-sample (pooled)
    t-interval ``c ± t_(n_a+n_b−2) · s_p · sqrt(wa²/n_a + wb²/n_b)``: (size, ...).

    Subtracting two points' own t replicates gives the Behrens-Fisher interval, which is
    conservative (simulated 99 % for a nominal 95 % at 3 + 3 repetitions), and Welch's
    interval still covers 96-97 % there; the pooled interval holds 95 % and is robust to
    unequal spreads when both sides have the same number of repetitions (the plan's
    design). Other weights give e.g. a mean balanced over two run orders (½, ½) and the
    order effect (½, −½). NaN where either side has a single value.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = a.shape[-1], b.shape[-1]
    shape = (size, *np.broadcast_shapes(a.shape[:-1], b.shape[:-1]))
    if min(na, nb) < 2:
        return np.full(shape, np.nan)
    ss = (_centered(a) ** 2).sum(axis=-1) + (_centered(b) ** 2).sum(axis=-1)
    se = np.sqrt(ss / (na + nb - 2) * (wa**2 / na + wb**2 / nb))
    t = np.random.default_rng(seed).standard_t(na + nb - 2, shape)
    return wa * a.mean(axis=-1) + wb * b.mean(axis=-1) + se * t


def ratio_replicates(
    a: np.ndarray, b: np.ndarray, size: int = RESAMPLES, seed: int = SEED
) -> np.ndarray:
    """Replicates of mean(a) / mean(b) over the last axis: the two-sample t-interval on
    the log scale, ``r · exp(± t_(n_a+n_b−2) · s_rel · sqrt(1/n_a + 1/n_b))`` with the
    pooled relative spread ``s_rel`` (delta method): (size, ...). A ratio of the two
    points' own t replicates would be conservative, as for a difference. NaN where
    either side has a single value or a mean that is not positive."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = a.shape[-1], b.shape[-1]
    shape = (size, *np.broadcast_shapes(a.shape[:-1], b.shape[:-1]))
    if min(na, nb) < 2:
        return np.full(shape, np.nan)
    ma, mb = a.mean(axis=-1), b.mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = (_centered(a) ** 2).sum(axis=-1) / ma**2 + (_centered(b) ** 2).sum(axis=-1) / mb**2
        se = np.sqrt(rel / (na + nb - 2) * (1 / na + 1 / nb))
        log_r = np.log(np.where((ma > 0) & (mb > 0), ma / mb, np.nan))
    t = np.random.default_rng(seed).standard_t(na + nb - 2, shape)
    return np.exp(log_r + se * t)


# ----------------------------------------------------- across runs: run as unit
def _complete(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y broadcast along the last axis, and where a row is missing a value (NaN)."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return x, y, np.isnan(x).any(axis=-1) | np.isnan(y).any(axis=-1)


def slope_replicates(
    x: np.ndarray, y: np.ndarray, size: int = RESAMPLES, seed: int = SEED
) -> np.ndarray:
    """Replicates of the OLS slope of y on x over runs (last axis) whose percentile
    interval is the regression t-interval ``b ± t_(N-2) · se(b)``: (size, ...)."""
    x, y, missing = _complete(x, y)
    n = x.shape[-1]
    b = slope(x, y)
    xc = _centered(x)
    resid = _centered(y) - np.expand_dims(b, -1) * xc
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt((resid**2).sum(axis=-1) / (n - 2) / (xc**2).sum(axis=-1))
    t = np.random.default_rng(seed).standard_t(max(n - 2, 1), (size, *np.shape(b)))
    return np.where(missing | (n < 3), np.nan, b + se * t)


def _fisher_z_replicates(
    r: np.ndarray | float,
    sd: np.ndarray | float,
    n: int,
    missing: np.ndarray,
    size: int,
    seed: int,
) -> np.ndarray:
    """``tanh(atanh(r) + sd * Z)``: a correlation's Fisher-z replicates."""
    z = np.random.default_rng(seed).standard_normal((size, *np.shape(r)))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.tanh(np.arctanh(np.clip(r, -1, 1)) + sd * z)
    return np.where(missing | (n < 4), np.nan, out)


def pearson_replicates(
    x: np.ndarray, y: np.ndarray, size: int = RESAMPLES, seed: int = SEED, controls: int = 0
) -> np.ndarray:
    """Replicates of Pearson r over runs whose percentile interval is the Fisher-z
    interval ``tanh(atanh(r) ± z / sqrt(N - 3 - controls))``: (size, ...). ``controls``
    is the number of variables partialled out of x and y beforehand (a partial
    correlation loses one degree of freedom per control)."""
    x, y, missing = _complete(x, y)
    n = x.shape[-1]
    sd = 1 / math.sqrt(max(n - 3 - controls, 1))
    return _fisher_z_replicates(pearson(x, y), sd, n - controls, missing, size, seed)


def centered_within(a: np.ndarray, groups: Sequence[Hashable]) -> np.ndarray:
    """``a`` (last axis: runs) minus the mean of its group's runs: each group's own level
    removed, so a correlation of two centered quantities is their partial correlation
    given the group (group fixed effects)."""
    a = np.asarray(a, dtype=float)
    codes = {g: k for k, g in enumerate(dict.fromkeys(groups))}
    idx = np.array([codes[g] for g in groups], dtype=np.int64)
    out = a.copy()
    for k in range(len(codes)):
        cols = idx == k
        out[..., cols] -= a[..., cols].mean(axis=-1, keepdims=True)
    return out


def spearman_replicates(
    x: np.ndarray, y: np.ndarray, size: int = RESAMPLES, seed: int = SEED
) -> np.ndarray:
    """Replicates of Spearman rho over runs: Fisher z with the Bonett-Wright (2000)
    variance ``(1 + rho^2 / 2) / (N - 3)``: (size, ...)."""
    x, y, missing = _complete(x, y)
    n = x.shape[-1]
    rho = spearman(x, y)
    sd = np.sqrt((1 + np.asarray(rho) ** 2 / 2) / max(n - 3, 1))
    return _fisher_z_replicates(rho, sd, n, missing, size, seed)


def correlation_difference(
    y: np.ndarray, x1: np.ndarray, x2: np.ndarray, level: float = CI_LEVEL
) -> tuple[float, tuple[float, float] | None]:
    """r(y, x1) - r(y, x2) over runs, with Zou's (2007) interval for two correlations that
    share y ("Toward using confidence intervals to compare correlations", Psychological
    Methods 12: 399): each r's Fisher-z interval, combined through the correlation of the
    two estimates. The run is the unit; fewer than 4 complete runs give no interval."""
    y, x1, x2 = (np.asarray(v, dtype=float) for v in (y, x1, x2))
    ok = ~(np.isnan(y) | np.isnan(x1) | np.isnan(x2))
    y, x1, x2 = y[ok], x1[ok], x2[ok]
    r1, r2, r12 = (float(pearson(a, b)) for a, b in ((x1, y), (x2, y), (x1, x2)))
    diff = r1 - r2
    n = len(y)
    if n < 4 or not all(map(math.isfinite, (r1, r2, r12))) or max(abs(r1), abs(r2)) >= 1:
        return diff, None
    half = NormalDist().inv_cdf((1 + level) / 2) / math.sqrt(n - 3)
    (l1, u1), (l2, u2) = (
        (math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)) for r in (r1, r2)
    )
    c = ((r12 - r1 * r2 / 2) * (1 - r1**2 - r2**2 - r12**2) + r12**3) / ((1 - r1**2) * (1 - r2**2))
    lo = diff - math.sqrt(max(0.0, (r1 - l1) ** 2 + (u2 - r2) ** 2 - 2 * c * (r1 - l1) * (u2 - r2)))
    hi = diff + math.sqrt(max(0.0, (u1 - r1) ** 2 + (r2 - l2) ** 2 - 2 * c * (u1 - r1) * (r2 - l2)))
    return diff, (lo, hi)


#: Across-run statistics with their own interval, the run as the unit (the runs of a
#: sweep are independent experiments; docs/ANALYSIS.md says why not the redraws).
RUN_INTERVALS: dict[
    Callable[[np.ndarray, np.ndarray], np.ndarray | float],
    Callable[[np.ndarray, np.ndarray], np.ndarray],
] = {
    slope: slope_replicates,
    pearson: pearson_replicates,
    spearman: spearman_replicates,
}


# ------------------------------------------------------------------ steady state
#: MSER-5: observations per batch mean.
MSER_BATCH = 5


def mser_truncation(x: np.ndarray, batch: int = MSER_BATCH) -> tuple[int, bool | None]:
    """Warm-up to drop from a series in time order (MSER-5, White 1997), capped at half.

    Batch means ``Y_1..Y_B``; the truncation ``d`` (in batches) minimises
    ``sum_(j>d) (Y_j - mean(Y_(>d)))^2 / (B - d)^2`` over ``0 <= d <= B // 2``. Returns
    (observations to drop, settled): settled is False when the minimum sits on the cap
    (the series never settled within its first half) and None when there are fewer
    than two batches to compare.
    """
    n_batches = len(x) // batch
    if n_batches < 2:
        return 0, None
    y = np.asarray(x[: n_batches * batch], dtype=float).reshape(n_batches, batch).mean(axis=1)
    cap = n_batches // 2
    # suffix sums give every candidate's tail mean and squared deviations at once
    tail_n = n_batches - np.arange(cap + 1)
    s1 = np.cumsum(y[::-1])[::-1][: cap + 1]
    s2 = np.cumsum((y**2)[::-1])[::-1][: cap + 1]
    mser = (s2 - s1**2 / tail_n) / tail_n**2
    d = int(np.argmin(mser))
    return d * batch, not (d == cap and cap > 0)
