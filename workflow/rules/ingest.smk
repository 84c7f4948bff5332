# Raw JSONL of every point of one (hypothesis, stack) -> typed Parquet tables.


rule ingest:
    input:
        runs=lambda w: [str(PLAN.path(layout.RUN, **r.wildcards)) for r in PLAN.runs(w.hyp, w.stack)],
        # runs of the previous harness brought in by `spark-harness import` (docs/LEGACY.md)
        imported=lambda w: [str(p) for p in imported_runs(RESULTS, w.hyp, w.stack)],
    output:
        requests=res(layout.INGEST_REQUESTS),
        telemetry=res(layout.INGEST_TELEMETRY),
        points=res(layout.INGEST_POINTS),
    params:
        results=lambda w: RESULTS,
    conda:
        CONDA_ENV
    log:
        res("logs/ingest/{hyp}/{stack}.log"),
    script:
        "../scripts/ingest.py"
