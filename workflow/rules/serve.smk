# Services of one point: the server and its telemetry sidecar.
#
# Both are Snakemake service() outputs living exactly as long as the point's loadgen
# job (one server per point and repetition: clean KV tiers every time). Rules for
# services (docs/ARCHITECTURE.md): `shell:` with `exec` so SIGTERM reaches the process
# (every value quoted: `:q`, as config values reach these lines),
# `threads: 0`, endpoint/sidecar files written at once, readiness polled by the
# consumer within the stack's start-up timeout.
#
# Both services are inputs of loadgen, and the sidecar finds the endpoint file itself
# (it polls for it every 50 ms): Snakemake checks a job's inputs in steps of at least
# one second before starting it, so a server -> sidecar -> loadgen chain of inputs
# would cost every point two such steps instead of one. Those steps, and the executor's
# wait for a point's jobs to end, are whole seconds in Snakemake; quicken() makes them
# 50 ms (spark_harness/workflow_polling.py: about 2 s of each 6 s demo point).

import sys

from spark_harness import workflow_polling

if len(workflow_polling.quicken()) < len(workflow_polling.MODULES):
    print(
        "spark-harness: this Snakemake's waits for a point's services could not be shortened"
        " (spark_harness/workflow_polling.py); each point takes ~2 s longer",
        file=sys.stderr,
    )


rule server_up:
    output:
        service(res(layout.ENDPOINT)),
    params:
        stack=lambda w: json.dumps(run_of(w).spec["server"], sort_keys=True),
        workdir=lambda w: PLAN.path(layout.SCRATCH_DIR, **w) / "server",
    conda:
        CONDA_ENV
    log:
        point_log("server"),
    threads: 0
    shell:
        "rm -rf -- {params.workdir:q} && "
        "exec spark-harness serve --stack-json {params.stack:q} --name {wildcards.stack:q}"
        " --endpoint-file {output:q} --workdir {params.workdir:q} --log {log:q} > {log:q} 2>&1"


rule telemetry_sidecar:
    output:
        service(res(layout.SIDECAR)),
    params:
        endpoint=res(layout.ENDPOINT),
        cadence_ms=lambda w: run_of(w).spec["telemetry"].get("cadence_ms", 200),
        devices=lambda w: ",".join(d) if isinstance(d := run_of(w).spec["telemetry"].get("devices", "auto"), list) else d,
        spool=lambda w: PLAN.path(layout.SCRATCH_DIR, **w) / "telemetry.spool.jsonl",
    conda:
        CONDA_ENV
    log:
        point_log("sidecar"),
    threads: 0
    shell:
        "exec spark-harness sidecar --endpoint-file {params.endpoint:q} --service-file {output:q}"
        " --spool {params.spool:q} --cadence-ms {params.cadence_ms:q} --devices {params.devices:q}"
        " > {log:q} 2>&1"
