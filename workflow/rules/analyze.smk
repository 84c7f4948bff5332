# Statistics and verdicts. U_work per stack feeds H2A/H2B; one summary per hypothesis.


rule u_work:
    input:
        requests=res("ingest/H0/{stack}/requests.parquet"),
        points=res("ingest/H0/{stack}/points.parquet"),
    output:
        res(layout.U_WORK),
    conda:
        CONDA_ENV
    log:
        res("logs/u_work/{stack}.log"),
    script:
        "../scripts/u_work.py"


rule summary:
    input:
        lambda w: [
            f"{d}/{name}.parquet"
            for d in ingest_dirs(w.hyp).values()
            for name in ("requests", "telemetry", "points")
        ],
    output:
        summary=res(layout.SUMMARY_CSV),
        verdict=res(layout.VERDICT),
    params:
        hypothesis=lambda w: PLAN.hypotheses[w.hyp],
        sources=lambda w: {f"{h}/{s}": d for (h, s), d in ingest_dirs(w.hyp).items()},
        track=PLAN.track,
    conda:
        CONDA_ENV
    log:
        res("logs/summary/{hyp}.log"),
    script:
        "../scripts/summarize.py"
