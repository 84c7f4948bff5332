"""Snakemake `script:` for rule verdicts: the verdict table and the report's front page."""

import sys
from pathlib import Path

from spark_harness.files import atomic_writer
from spark_harness.verdict_table import front_page, rows_of, write

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
rows = rows_of(Path(f) for f in sm.input.verdicts)
write(rows, Path(sm.output.csv), Path(sm.output.md))
with atomic_writer(Path(sm.output.front)) as fh:
    fh.write(front_page(rows, Path(sm.input.intro).read_text()))
