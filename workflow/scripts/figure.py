"""Snakemake `script:` for rule figure: one figure (PNG + the CSV it plots)."""

import sys
from pathlib import Path

from spark_harness.plots import draw

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
draw(
    sm.wildcards.hyp,
    sm.wildcards.figure,
    Path(sm.input.summary).parent,
    Path(sm.output.png),
    Path(sm.output.csv),
)
