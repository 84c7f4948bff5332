"""Figures drawn from the summaries: one PNG (and SVG) per figure, with the CSV it plots.

``draw(hyp, summary_dir, out_dir, ingest_dirs, points)`` draws every figure of one
hypothesis into ``out_dir`` (``results/figures/{hyp}/``): the evidence figures its entry
in :mod:`spark_harness.registry` names, from the summary folder alone (``verdict.json``
and the ``fig_*.csv`` tables of ``analysis.summarize``), a time-series panel per
measured point from the ingested Parquet, and ``verdict.rst`` (the verdict with its
numbers, which the report's captions include). ``files(hyp, points)`` names everything
it writes, so the workflow can declare it.

The names here are plain data: the workflow asks for them at every parse, and the
drawing code (matplotlib takes a second to import) is loaded only by :func:`draw`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from spark_harness.plots.verdicts import Verdict
from spark_harness.registry import load

#: The verdict with its numbers, as reStructuredText: the report's captions include it.
VERDICT_RST = "verdict.rst"
TIMESERIES_DIR = "timeseries"


def figure_names(hyp: str, track: str = "v3") -> list[str]:
    """The evidence figures of ``hyp`` in a plan track (none for one without figures)."""
    known = load(track)
    return list(known[hyp].figure_names) if hyp in known else []


def timeseries_name(stack: str, point: str) -> str:
    """The figure stem of one measured point's time-series panel."""
    return f"{TIMESERIES_DIR}/{stack}_{point}"


def files(hyp: str, points: Iterable[tuple[str, str]], track: str = "v3") -> list[str]:
    """Every file :func:`draw` writes for ``hyp``, relative to its output folder.

    ``points`` are the (stack, point) pairs measured for ``hyp`` (none for the
    analytical hypotheses, whose sources have their own panels)."""
    out = [f"{n}.{ext}" for n in figure_names(hyp, track) for ext in ("png", "svg", "csv")]
    out += [f"{timeseries_name(s, p)}.{ext}" for s, p in points for ext in ("png", "csv")]
    return [*out, VERDICT_RST]


def report_labels(
    verdict_json: Path, figure: str, stack: str = "all", point: str = "all"
) -> dict[str, str]:
    """Labels of one figure in the Snakemake report: which figure, and the verdict."""
    return Verdict.read(Path(verdict_json)).labels(figure, stack, point)


def draw(
    hyp: str,
    summary_dir: Path,
    out_dir: Path,
    ingest_dirs: Mapping[str, Path] | None = None,
    points: Sequence[tuple[str, str]] = (),
    track: str = "v3",
) -> list[Path]:
    """Draw every figure of ``hyp`` into ``out_dir``; return the files written.

    ``ingest_dirs`` maps each stack of ``hyp`` to its ingest folder (for the time
    series of ``points``); ``track`` is the plan's (v3, or the legacy v2.5)."""
    from spark_harness.plots.render import render

    return render(
        hyp, Path(summary_dir), Path(out_dir), dict(ingest_dirs or {}), list(points), track
    )
