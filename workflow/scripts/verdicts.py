"""Snakemake `script:` for rule verdicts: the verdict table and the report's front page."""

import sys
from pathlib import Path

from spark_harness.files import atomic_writer
from spark_harness.verdict_table import front_page, not_applicable_rows, ordered, rows_of, write

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
# the plan's hypotheses, then those it declares it cannot decide, in the plan's order
rows = ordered(
    [
        *rows_of(Path(f) for f in sm.input.verdicts),
        *not_applicable_rows(sm.params.not_applicable, sm.params.track),
    ]
)
write(rows, Path(sm.output.csv), Path(sm.output.md))
with atomic_writer(Path(sm.output.front)) as fh:
    fh.write(front_page(rows, Path(sm.input.intro).read_text()))
