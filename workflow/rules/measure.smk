# The measurement of one point. Its params hold exactly the resolved point spec, so
# editing a sweep or a stack file reruns only the points whose spec changed.

from spark_harness import plan_progress

plan_progress.export(PLAN)  # each point starts by printing points done / total and an ETA


rule loadgen:
    input:
        endpoint=res(layout.ENDPOINT),
        sidecar=res(layout.SIDECAR),
        u_work=u_work_input,
        after=order_input,
    output:
        requests=res(layout.REQUESTS),
        telemetry=res(layout.TELEMETRY),
        run=res(layout.RUN),
    params:
        spec=lambda w: run_of(w).spec_json(),
        out=res(layout.RAW_DIR),
        failed=res(layout.FAILED_DIR),
        scratch=lambda w: PLAN.path(layout.SCRATCH_DIR, **w) / "qos",
        u_work=lambda w, input: ["--u-work-file", input.u_work] if input.u_work else [],
    resources:
        bench_slot=1,
    conda:
        CONDA_ENV
    log:
        point_log("loadgen"),
    shell:
        "exec spark-harness loadgen --endpoint-file {input.endpoint:q}"
        " --sidecar-file {input.sidecar:q} --spec-json {params.spec:q} {params.u_work:q}"
        " --out {params.out:q} --failed-dir {params.failed:q} --scratch {params.scratch:q}"
        " --progress-fd 3 3>&2 > {log:q} 2>&1"
