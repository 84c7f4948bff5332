"""Statistics and verdicts: ingested tables -> ``summary.csv``, ``verdict.json``, figure tables.

``summarize(hyp, hyp_config, sources, out_dir)`` evaluates one hypothesis of
HYPOTHESES.md over the ingested data of its sources ((hypothesis, stack) -> ingest dir)
and writes ``summary.csv`` (one row per point, failed points included), ``verdict.json``
(docs/ANALYSIS.md) and the tidy ``fig_*.csv`` tables its figures draw from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUMMARY_CSV = "summary.csv"
VERDICT_JSON = "verdict.json"


class AnalysisError(ValueError):
    """The hypothesis cannot be evaluated at all (unknown id, no sources)."""


def summarize(
    hyp: str,
    hyp_config: Mapping[str, Any],
    sources: Mapping[tuple[str, str], Path],
    out_dir: Path,
    track: str = "v3",
) -> None:
    """Evaluate ``hyp`` and write its summary, verdict and figure tables into ``out_dir``.

    ``track`` is the plan's (``v3``, or ``v2.5`` for the legacy plan, whose ids mean
    other hypotheses): it picks the evaluators."""
    from spark_harness.analysis.evidence import Context, failed_report, verdict
    from spark_harness.analysis.runs import load

    evaluators = _evaluators(track)
    if hyp not in evaluators:
        raise AnalysisError(
            f"no evaluator for hypothesis {hyp!r} in the {track} plan"
            f" (have: {', '.join(evaluators)})"
        )
    if not sources:
        raise AnalysisError(f"{hyp}: no ingested sources given")
    out_dir = Path(out_dir)
    steady = bool(hyp_config.get("steady_state", True))
    ctx = Context(hyp, hyp_config, load(sources, steady=steady), out_dir)
    if ctx.data.runs.height == 0:  # every attempt failed: invalid, and each one reported
        result = verdict(ctx, [], [failed_report(ctx.data)], ctx.data.runs)
    else:
        result = evaluators[hyp](ctx)
    result.sources = {f"{h}/{s}": str(p) for (h, s), p in sources.items()}
    ctx.write_table(SUMMARY_CSV, ctx.summary)
    result.tables = list(ctx.tables)
    result.write(out_dir / VERDICT_JSON)


def _evaluators(track: str) -> Mapping[str, Any]:
    """The evaluators of a plan track."""
    if track == "v3":
        from spark_harness.analysis.hypotheses import EVALUATORS
    elif track == "v2.5":
        from spark_harness.analysis.v25 import EVALUATORS
    else:
        raise AnalysisError(f"unknown plan track {track!r} (have: v3, v2.5)")
    return EVALUATORS
