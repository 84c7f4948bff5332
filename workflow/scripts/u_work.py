"""Snakemake `script:` for rule u_work: H0's usable concurrency for one stack."""

import sys
from pathlib import Path

from spark_harness.analysis.u_work import write_u_work

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
write_u_work(Path(sm.input.requests).parent, Path(sm.output[0]))
