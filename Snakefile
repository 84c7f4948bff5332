# DGX Spark LLM storage harness: the experiment plan (docs/PLAN.md) as a DAG.
#
#   per (hypothesis, stack, point, repetition):
#       server_up (service) -> telemetry_sidecar (service) -> loadgen
#   per (hypothesis, stack):  ingest
#   per hypothesis:           summary (statistics + verdict), figures
#   per plan:                 verdicts (the table at a glance), A-vs-B charts
#
# The hypotheses come from spark_harness.registry (workflow/rules/hypotheses.smk makes
# one target rule each), so this file names none of them.
#
# `snakemake --cores 1 H_all` runs the whole plan; `snakemake --cores 1 H2B` one
# hypothesis; `snakemake --cores 1 figures` redraws figures from the summaries.

from snakemake.utils import min_version

min_version("9.0")


# A --configfile that names its `track` (config/plan_v2.5.yaml) is a whole plan of its
# own: Snakemake would merge it into config/config.yaml's hypotheses, so the default
# plan is loaded only for configs that do not name a track.
if "track" not in config:

    configfile: "config/config.yaml"



include: "workflow/rules/common.smk"
include: "workflow/rules/serve.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/hypotheses.smk"
include: "workflow/rules/archive.smk"


# the front page with the verdict table once the `verdicts` rule has written it
report: front_page()


rule H_all:
    """Every hypothesis of the plan: summaries, verdicts, figures, the verdict table."""
    default_target: True
    input:
        plan_targets(),


rule figures:
    """Redraw every figure from the summaries (no measurement reruns)."""
    input:
        [figure_targets(h) for h in PLAN.hypotheses],
        compare_targets(),


onstart:
    # the targets are known once the DAG is: a targeted run's progress counts its points
    # (measure.smk's export at parse time stays for a job run by a Snakemake of its own,
    # as on a cluster, where no onstart runs: it counts the whole plan)
    plan_progress.export(PLAN, workflow.dag_settings.targets)


onsuccess:
    print_verdicts()


onerror:
    teardown_command_stacks()
