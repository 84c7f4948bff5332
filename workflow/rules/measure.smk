# The measurement of one point. Its params hold exactly the resolved point spec, so
# editing a sweep or a stack file reruns only the points whose spec changed.

from spark_harness import plan_progress

plan_progress.export(PLAN)  # each point starts by printing points done / total and an ETA


def u_work_input(w):
    """H2A/H2B read U_work from H0 at run time: a new U_work reruns them."""
    run = run_of(w)
    return [str(PLAN.path(layout.U_WORK, stack=w.stack))] if PLAN.needs_u_work(run) else []


def order_input(w):
    """Under `order: alternate` (H9's AB/BA pairs) each run waits for the previous one."""
    prev = PLAN.previous_in_order(run_of(w))
    return [str(PLAN.path(layout.RUN, **prev.wildcards))] if prev else []


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
        u_work=lambda w, input: f"--u-work-file {input.u_work}" if input.u_work else "",
    resources:
        bench_slot=1,
    log:
        res(layout.LOG_DIR + "/loadgen.log"),
    shell:
        "spark-harness progress || true; exec spark-harness loadgen --endpoint-file {input.endpoint}"
        " --sidecar-file {input.sidecar} --spec-json {params.spec:q} {params.u_work}"
        " --out {params.out} --failed-dir {params.failed} --scratch {params.scratch}"
        " > {log} 2>&1"
