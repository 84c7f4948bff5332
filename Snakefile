# DGX Spark LLM storage harness: the experiment plan of HYPOTHESES.md as a DAG.
#
#   per (hypothesis, stack, point, repetition):
#       server_up (service) -> telemetry_sidecar (service) -> loadgen
#   per (hypothesis, stack):  ingest
#   per hypothesis:           summary (statistics + verdict), figures
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
include: "workflow/rules/archive.smk"


report: "workflow/report/workflow.rst"


rule H_all:
    """Every hypothesis of the plan: summaries, verdicts and figures."""
    input:
        [hypothesis_targets(h) for h in PLAN.hypotheses],


rule H0:
    input:
        lambda w: hypothesis_targets("H0"),


rule H1:
    input:
        lambda w: hypothesis_targets("H1"),


rule H2A:
    input:
        lambda w: hypothesis_targets("H2A"),


rule H2B:
    input:
        lambda w: hypothesis_targets("H2B"),


rule H3:
    input:
        lambda w: hypothesis_targets("H3"),


rule H4A:
    input:
        lambda w: hypothesis_targets("H4A"),


rule H4B:
    input:
        lambda w: hypothesis_targets("H4B"),


rule H5:
    input:
        lambda w: hypothesis_targets("H5"),


rule H6:
    input:
        lambda w: hypothesis_targets("H6"),


rule H7:
    input:
        lambda w: hypothesis_targets("H7"),


rule H8A:
    input:
        lambda w: hypothesis_targets("H8A"),


rule H8B:
    input:
        lambda w: hypothesis_targets("H8B"),


rule H9:
    input:
        lambda w: hypothesis_targets("H9"),


rule figures:
    """Redraw every figure from the summaries (no measurement reruns)."""
    input:
        [figure_targets(h) for h in PLAN.hypotheses],


onerror:
    teardown_command_stacks()
