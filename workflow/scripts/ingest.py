"""Snakemake `script:` for rule ingest: raw run directories -> Parquet."""

import sys
from pathlib import Path

from spark_harness.ingest import failed_attempts, ingest

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
runs = [Path(p).parent for p in [*sm.input.runs, *sm.input.imported]]
# failed attempts of this (hypothesis, stack) are reported, never dropped
failed = failed_attempts(Path(sm.params.results), sm.wildcards.hyp, sm.wildcards.stack)
ingest(runs + failed, Path(sm.output.requests).parent)
