# Result archive: `snakemake --cores 1 archive` bundles the plan's results (runs,
# tables, summaries, figures, logs, the report where one was made), the resolved plan
# and software versions into archives/<name>.tar.gz; `spark-harness restore` unpacks
# one so `figures` redraws without any load (docs/LEGACY.md).

ARCHIVE = config.get("archive") or {}
ARCHIVE_NAME = ARCHIVE.get("name") or Path(RESULTS).name


rule archive:
    """Bundle the results of every hypothesis into archives/<name>.tar.gz."""
    input:
        plan_targets(),
    output:
        f"{ARCHIVE.get('dir', 'archives')}/{ARCHIVE_NAME}.tar.gz",
    params:
        results=lambda w: RESULTS,
        config=lambda w: dict(config),
        track=PLAN.track,
        name=lambda w: ARCHIVE_NAME,
    conda:
        CONDA_ENV
    log:
        f"{ARCHIVE.get('dir', 'archives')}/{ARCHIVE_NAME}.log",
    script:
        "../scripts/archive.py"
