"""The files figures draw from: a hypothesis's summary folder and its ingested tables.

Figures read what ``analysis.summarize`` wrote (``verdict.json`` and the ``fig_*.csv``
tables, docs/ANALYSIS.md) and, for the per-point time series, the ingested Parquet of
each stack. A table the verdict lists but that is absent is an error naming the file; a
table the analysis did not write (no usable run, a rule that could not be evaluated) is
not: the figure then says why it is empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from spark_harness.plots.verdicts import PlotError, Verdict
from spark_harness.verdict_contract import VERDICT_JSON


def number(value: Any) -> float | None:
    """A polars aggregate (``mean``, ``max``: typed as any literal) as a float, or None."""
    return None if value is None else float(value)


@dataclass
class Summary:
    """One hypothesis's summary folder (``results/summary/{hyp}/``)."""

    dir: Path
    verdict: Verdict = field(init=False)

    def __post_init__(self) -> None:
        self.dir = Path(self.dir)
        self.verdict = Verdict.read(self.dir / VERDICT_JSON)

    @property
    def hyp(self) -> str:
        return self.verdict.hypothesis

    def table(self, name: str) -> pl.DataFrame | None:
        """A figure table, or None where the analysis did not write it (and says why)."""
        path = self.dir / name
        if not path.is_file():
            if name in self.verdict.tables:
                raise PlotError(f"{path}: listed in verdict.json but missing")
            return None
        try:
            return pl.read_csv(path, infer_schema_length=None)
        except pl.exceptions.PolarsError as e:
            raise PlotError(f"{path}: not a readable CSV: {e}") from e

    def along(self, name: str, axis: str) -> pl.DataFrame | str:
        """A figure table drawn along a sweep axis, or why it cannot be drawn: no table, or
        a plan whose sources do not sweep that axis (a figure, not an error, says so)."""
        table = self.table(name)
        if table is None or table.height == 0:
            return self.why_empty()
        if axis not in table.columns:
            return f"no data to draw: the sources do not sweep {axis}"
        return table.sort(axis)

    def require(self, frame: pl.DataFrame, name: str, columns: list[str]) -> None:
        """Fail clearly when a table lacks a column a figure plots."""
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise PlotError(f"{self.dir / name}: missing column(s) {', '.join(missing)}")

    def failed_points(self) -> list[str]:
        """Points of the sources without any usable run, with why (from summary.csv)."""
        path = self.dir / "summary.csv"
        if not path.is_file():
            return []
        table = pl.read_csv(path, infer_schema_length=None)
        if "n_reps" not in table.columns:
            raise PlotError(f"{path}: no n_reps column (not a summary.csv)")
        reasons = "failed_reasons" if "failed_reasons" in table.columns else None
        lost = table.filter(pl.col("n_reps") == 0)
        return [
            f"{r['hyp']}/{r['stack']}/{r['point']}" + (f" ({r[reasons]})" if reasons else "")
            for r in lost.iter_rows(named=True)
        ]

    def why_empty(self) -> str:
        """What a figure without data says: the verdict's reasons."""
        reasons = ", ".join(self.verdict.reasons[:4]) or "the analysis wrote no table"
        return f"no data to draw ({reasons})"


@dataclass
class Ingested:
    """The ingested tables of one hypothesis, per stack (``results/ingest/{hyp}/{stack}``)."""

    dirs: Mapping[str, Path]

    def _scan(self, stack: str, name: str) -> pl.LazyFrame:
        if stack not in self.dirs:
            have = ", ".join(self.dirs) or "none"
            raise PlotError(f"no ingested tables for stack {stack!r} (have: {have})")
        path = Path(self.dirs[stack]) / name
        if not path.is_file():
            raise PlotError(f"{path}: ingested table missing (the ingest rule writes it)")
        return pl.scan_parquet(path)

    def points(self, stack: str) -> pl.DataFrame:
        return self._scan(stack, "points.parquet").collect()

    def run(self, stack: str, name: str, run_id: str) -> pl.DataFrame:
        """The rows of one run from ``requests.parquet`` or ``telemetry.parquet``."""
        return self._scan(stack, name).filter(pl.col("run_id") == run_id).collect()
