"""Statistics and verdicts: ingested tables -> ``summary.csv``, ``verdict.json``, figure tables.

``summarize(hyp, hyp_config, sources, out_dir)`` evaluates one hypothesis of
docs/PLAN.md over the ingested data of its sources ((hypothesis, stack) -> ingest dir)
and writes ``summary.csv`` (one row per point, failed points included), ``verdict.json``
(docs/ANALYSIS.md) and the tidy ``fig_*.csv`` tables its figures draw from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spark_harness.verdict_contract import SUMMARY_CSV, VERDICT_JSON

if TYPE_CHECKING:
    from spark_harness.registry import Hypothesis


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
    other hypotheses): it picks the registry the evaluator comes from."""
    from spark_harness.analysis.evidence import Context, failed_report, verdict
    from spark_harness.analysis.runs import load

    entry = _entry(hyp, track)
    if not sources:
        raise AnalysisError(f"{hyp}: no ingested sources given")
    out_dir = Path(out_dir)
    steady = bool(hyp_config.get("steady_state", True))
    # the claim as the registry states it, unless the plan words it
    config = {"title": entry.title, **hyp_config}
    ctx = Context(hyp, config, load(sources, steady=steady), out_dir)
    if ctx.data.runs.height == 0:  # every attempt failed: invalid, and each one reported
        result = verdict(ctx, [], [failed_report(ctx.data)], ctx.data.runs)
    else:
        result = entry.evaluate()(ctx)
    result.sources = {f"{h}/{s}": str(p) for (h, s), p in sources.items()}
    ctx.write_table(SUMMARY_CSV, ctx.summary)
    result.tables = list(ctx.tables)
    result.write(out_dir / VERDICT_JSON)


def _entry(hyp: str, track: str) -> Hypothesis:
    """The registry entry of ``hyp`` in a plan track (its evaluator, its claim)."""
    from spark_harness.registry import RegistryError, load

    try:
        known = load(track)
    except RegistryError as e:
        raise AnalysisError(str(e)) from e
    if hyp not in known:
        raise AnalysisError(
            f"no evaluator for hypothesis {hyp!r} in the {track} plan (have: {', '.join(known)})"
        )
    return known[hyp]
