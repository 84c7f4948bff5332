"""Snakemake `script:` for the A-vs-B chart of one comparison (spark_harness.registry)."""

import sys
from pathlib import Path

from spark_harness.plots.compare import render
from spark_harness.registry import COMPARISONS

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
comparison = next(c for c in COMPARISONS if c.name == sm.params.name)
a, b = (Path(v).parent for v in (sm.input.a, sm.input.b))
render(comparison, a, b, sm.output.png, sm.output.svg, sm.output.csv)
