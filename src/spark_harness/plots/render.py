"""Draw and write every figure of one hypothesis (the body of :func:`spark_harness.plots.draw`).

Each figure is written as PNG (evidence figures also as SVG) with the CSV of exactly
what it plotted; ``verdict.rst`` carries the verdict for the report's captions. Every
file is written atomically, so an interrupted job never leaves a half-drawn figure.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from spark_harness.files import atomic_writer
from spark_harness.plots import VERDICT_RST, timeseries_name
from spark_harness.plots.data import Ingested, Summary
from spark_harness.plots.panels import FigureSpec
from spark_harness.plots.style import save, styled
from spark_harness.plots.timeseries import draw_point
from spark_harness.plots.verdicts import PlotError
from spark_harness.registry import load, resolve


def write_csv(frame: pl.DataFrame, path: Path) -> None:
    with atomic_writer(path) as fh:
        frame.write_csv(fh)


def figures(hyp: str, track: str) -> list[FigureSpec]:
    """The figure code of ``hyp`` in a plan track, as its registry entry names it."""
    known = load(track)
    return [FigureSpec(f.name, resolve(f.draw)) for f in known[hyp].figures] if hyp in known else []


def render(
    hyp: str,
    summary_dir: Path,
    out_dir: Path,
    ingest_dirs: dict[str, Path],
    points: list[tuple[str, str]],
    track: str = "v3",
) -> list[Path]:
    summary = Summary(summary_dir)
    if summary.hyp != hyp:
        raise PlotError(f"{summary_dir}: verdict.json is for {summary.hyp}, not {hyp}")
    written: list[Path] = []
    with styled():
        for spec in figures(hyp, track):
            fig, table = spec.draw(summary)
            png, svg, csv = (out_dir / f"{spec.name}.{ext}" for ext in ("png", "svg", "csv"))
            save(fig, png, svg)
            write_csv(table, csv)
            written += [png, svg, csv]
        ingested = Ingested(ingest_dirs)
        for stack, point in points:
            fig, table = draw_point(ingested, stack, point, summary.verdict)
            stem = out_dir / timeseries_name(stack, point)
            png, csv = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".csv")
            save(fig, png)
            write_csv(table, csv)
            written += [png, csv]
    summary.verdict.write_rst(out_dir / VERDICT_RST)
    return [*written, out_dir / VERDICT_RST]
