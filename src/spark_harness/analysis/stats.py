"""Statistics behind every verdict: percentiles, bootstrap CIs, correlations, slopes.

Conventions (docs/ANALYSIS.md explains why):

- A percentile is the "inverted CDF" order statistic: ``pq = x_(ceil(q * n))`` of the sorted
  sample. Its bootstrap distribution is drawn exactly and cheaply: the k-th order statistic
  of a resample of n is ``x_(ceil(n * U_(k)))`` with ``U_(k) ~ Beta(k, n - k + 1)`` (the k-th
  of n uniforms), so one percentile replicate costs O(1), not O(n). Several percentiles of
  one resample are drawn jointly (uniform order statistics are built up in rank order).
- The resampling unit is the repetition: :class:`Resampler` resamples the runs of each
  point (stratum) with replacement and, within each chosen run, its requests. A point's
  value is the mean over its repetitions of the per-run statistic.
- CIs are percentile intervals at :data:`CI_LEVEL` from :data:`RESAMPLES` replicates drawn
  with a fixed seed, so a verdict is reproducible bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np

#: Two-sided confidence level of every CI ("mean difference with 95 % CI", HYPOTHESES.md).
CI_LEVEL = 0.95
#: Bootstrap replicates per CI.
RESAMPLES = 2000
#: Seed of every bootstrap, so verdicts are reproducible.
SEED = 20261126
#: A CI is not reported when more than this share of replicates is undefined (e.g. a
#: correlation of a resample whose x values are all equal).
MAX_UNDEFINED_SHARE = 0.1
#: Above this many resampled values per run, a bootstrap mean uses its normal limit.
EXACT_MEAN_LIMIT = 4_000_000


def rank(n: int, q: float) -> int:
    """1-based rank of the q-percentile of n sorted values (inverted CDF)."""
    return min(max(math.ceil(q * n - 1e-9), 1), n)


def percentile(sorted_x: np.ndarray, q: float) -> float:
    """The q-percentile (0 < q <= 1) of an ascending sample; NaN when empty."""
    n = len(sorted_x)
    return float(sorted_x[rank(n, q) - 1]) if n else math.nan


def bootstrap_percentiles(
    sorted_x: np.ndarray, qs: Sequence[float], size: int, rng: np.random.Generator
) -> np.ndarray:
    """``size`` bootstrap replicates of several percentiles of one sample: (size, len(qs)).

    Exact: each row is the qs-percentiles of one resample of n values with replacement.
    """
    n = len(sorted_x)
    out = np.full((size, len(qs)), np.nan)
    if n == 0 or size == 0:
        return out
    order = np.argsort(qs)
    u = np.zeros(size)
    k_prev = 0
    for j in order:
        k = rank(n, qs[j])
        if k > k_prev:
            # the next order statistic given the previous one: scaled Beta on (u, 1)
            u = u + (1.0 - u) * rng.beta(k - k_prev, n - k + 1, size)
            k_prev = k
        out[:, j] = sorted_x[np.minimum((u * n).astype(np.int64), n - 1)]
    return out


def bootstrap_means(x: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` bootstrap replicates of the mean of x (normal limit for very large x)."""
    n = len(x)
    if n == 0:
        return np.full(size, np.nan)
    if n * size <= EXACT_MEAN_LIMIT:
        return x[rng.integers(0, n, (size, n))].mean(axis=1)
    sd = float(np.std(x, ddof=1)) if n > 1 else 0.0
    return float(np.mean(x)) + sd / math.sqrt(n) * rng.standard_normal(size)


def ci(replicates: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float] | None:
    """Percentile CI of bootstrap replicates; None when too many are undefined."""
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


# ------------------------------------------------------------------ resampling
class Resampler:
    """Stratified two-level bootstrap: repetitions within a point, requests within a run.

    ``strata`` holds one label per run (its point). Each replicate draws, for every
    stratum, as many runs as it has, with replacement ("slots"); per-run statistics of
    a chosen run are drawn again from that run's own resampling distribution.
    Arrays returned have shape (RESAMPLES, n_slots); :meth:`by_stratum` averages slots.
    """

    def __init__(self, strata: Sequence[Hashable], size: int = RESAMPLES, seed: int = SEED):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.labels: list[Hashable] = list(dict.fromkeys(strata))
        groups = {s: [i for i, v in enumerate(strata) if v == s] for s in self.labels}
        self.slot_stratum = np.array(
            [self.labels.index(s) for s in self.labels for _ in groups[s]], dtype=np.int64
        )
        cols = [
            np.asarray(groups[s])[self.rng.integers(0, len(groups[s]), size)]
            for s in self.labels
            for _ in groups[s]
        ]
        self.idx = np.stack(cols, axis=1) if cols else np.zeros((size, 0), dtype=np.int64)
        self.n_runs = len(strata)

    def fixed(self, values: Sequence[float]) -> np.ndarray:
        """A per-run value that is not resampled within the run (e.g. a telemetry mean)."""
        return np.asarray(values, dtype=float)[self.idx]

    def percentiles(self, samples: Sequence[np.ndarray], qs: Sequence[float]) -> np.ndarray:
        """Resampled percentiles of each chosen run: (RESAMPLES, n_slots, len(qs))."""
        out = np.full((*self.idx.shape, len(qs)), np.nan)
        for j in range(self.n_runs):
            mask = self.idx == j
            count = int(mask.sum())
            if count:
                out[mask] = bootstrap_percentiles(samples[j], qs, count, self.rng)
        return out

    def means(self, samples: Sequence[np.ndarray]) -> np.ndarray:
        """Resampled means of each chosen run: (RESAMPLES, n_slots)."""
        out = np.full(self.idx.shape, np.nan)
        for j in range(self.n_runs):
            mask = self.idx == j
            count = int(mask.sum())
            if count:
                out[mask] = bootstrap_means(np.asarray(samples[j], float), count, self.rng)
        return out

    def by_stratum(self, per_slot: np.ndarray) -> np.ndarray:
        """Mean over each stratum's slots: (RESAMPLES, n_strata) in ``labels`` order."""
        out = np.empty((per_slot.shape[0], len(self.labels)))
        for s in range(len(self.labels)):
            out[:, s] = per_slot[:, self.slot_stratum == s].mean(axis=1)
        return out
