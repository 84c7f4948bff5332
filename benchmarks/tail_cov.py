"""How much of a point's tail CoV between repetitions is sampling alone: size windows.

    python benchmarks/tail_cov.py H2B [--results results] [--draws 3000]

For every point of a measured hypothesis (its ingested tables under
``results/ingest/<hyp>``), over each repetition's analysed (steady) window: the ok
requests, the tail the point reports (p99 where every repetition holds 200, else p95,
as the rules judge it) and its CoV between repetitions, the number the CoV gate
reads. Then the CoV that sampling alone gives at the same request count and number of
repetitions: each repetition drawn from the point's pooled requests (with replacement,
as if the requests were independent), ``--draws`` times, with the median and the share
of draws at or over the gate. An observed CoV well above that median is spread between
repetitions (a per-run regime: where files lay, a collision pattern); one near it is
the window's size, which more requests per window lower.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from spark_harness.analysis import runs as R
from spark_harness.analysis import thresholds as T
from spark_harness.analysis.evidence import tail_quantile
from spark_harness.analysis.runs import QUANTILES
from spark_harness.analysis.stats import percentile


def cov(values: np.ndarray) -> float:
    """Sample CoV (ddof 1), as the gate computes it."""
    return float(np.std(values, ddof=1) / np.mean(values))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("hyp")
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--draws", type=int, default=3000)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    root = a.results / "ingest" / a.hyp
    sources = {(a.hyp, d.name): d for d in sorted(root.iterdir()) if d.is_dir()}
    if not sources:
        raise SystemExit(f"no ingested stacks under {root}")
    loaded = R.load(sources)
    rng = np.random.default_rng(a.seed)
    gate = f"P(>= {T.COV_P99_MAX:.0%})"
    print(f"| stack | point | requests per rep | tail | CoV | sampling alone: median | {gate} |")
    print("|---|---|---|---|---|---|---|")
    for (stack, point), part in loaded.runs.group_by("stack", "point", maintain_order=True):
        samples = [loaded.ttft.get(r, np.empty(0)) for r in part["run_id"]]
        if len(samples) < 2 or min(map(len, samples)) == 0:
            continue
        tail, _ = tail_quantile(part)
        q = QUANTILES[tail]
        observed = cov(np.array([percentile(s, q) for s in samples]))
        pool, n = np.concatenate(samples), round(float(np.mean([len(s) for s in samples])))
        drawn = np.array(
            [
                cov(np.array([percentile(np.sort(rng.choice(pool, n)), q) for _ in samples]))
                for _ in range(a.draws)
            ]
        )
        print(
            f"| {stack} | {point} | {', '.join(str(len(s)) for s in samples)} | {tail}"
            f" | {observed:.1%} | {np.median(drawn):.1%} | {np.mean(drawn >= T.COV_P99_MAX):.1%} |"
        )


if __name__ == "__main__":
    main()
