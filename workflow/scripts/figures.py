"""Snakemake `script:` for the figures job of one hypothesis: every figure, its CSV, and
the verdict snippet the report captions include."""

import sys
from pathlib import Path

from spark_harness.plots import draw

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
draw(
    sm.params.hyp,
    Path(sm.input.verdict).parent,
    Path(sm.output.verdict_rst).parent,
    {stack: Path(d) for stack, d in sm.params.ingest.items()},
    [(stack, point) for stack, point in sm.params.points],
    sm.params.track,
)
