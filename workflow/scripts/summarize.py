"""Snakemake `script:` for rule summary: statistics and the verdict of one hypothesis."""

import sys
from pathlib import Path

from spark_harness.analysis import summarize

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
sources = {tuple(k.split("/")): Path(v) for k, v in sm.params.sources.items()}
out = Path(sm.output.summary).parent
summarize(sm.wildcards.hyp, dict(sm.params.hypothesis), sources, out, track=sm.params.track)
