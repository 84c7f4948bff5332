"""Snakemake `script:` for rule archive: the results tree -> archives/<name>.tar.gz."""

import sys

from spark_harness.archive import create

sm = snakemake  # noqa: F821 — injected by Snakemake
sys.stderr = open(sm.log[0], "w")  # noqa: SIM115
manifest = create(
    sm.params.results, sm.params.config, sm.params.track, sm.output[0], sm.params.name
)
print(f"{sm.output[0]}: {len(manifest['files'])} files", file=sys.stderr)
