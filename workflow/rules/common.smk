# Shared helpers: validate the config, expand the plan, name every file.

import json
from pathlib import Path

from snakemake.utils import validate

from spark_harness import layout
from spark_harness import plots
from spark_harness import registry
from spark_harness.backfill import imported_runs
from spark_harness.plan import Plan, PlanError


validate(config, schema="../schemas/config.schema.yaml")

try:
    PLAN = Plan(config, base_dir=Path(workflow.basedir))
except PlanError as e:
    raise WorkflowError(str(e))

RESULTS = PLAN.results
#: every hypothesis the harness knows (spark_harness.registry, plugins included)
KNOWN = registry.load()
if PLAN.track == "v3" and (unknown := [h for h in PLAN.hypotheses if h not in KNOWN]):
    raise WorkflowError(
        f"hypotheses {', '.join(unknown)}: not in the registry (known: {', '.join(KNOWN)})"
    )


wildcard_constraints:
    hyp="|".join(sorted(PLAN.hypotheses, key=len, reverse=True)),
    stack="[A-Za-z][A-Za-z0-9]*",
    point="[A-Za-z0-9._-]+",
    rep="[0-9]+",


def res(pattern):
    """A layout pattern under the results directory (wildcards left in place)."""
    return f"{RESULTS}/{pattern}"


def run_of(w):
    return PLAN.run(w.hyp, w.stack, w.point, w.rep)


def in_plan(hyp):
    if hyp not in PLAN.hypotheses:
        raise WorkflowError(f"{hyp} is not in the plan (config `hypotheses`)")
    return hyp


def ingest_dirs(hyp):
    """Ingest directories a hypothesis's summary reads, keyed by (hypothesis, stack)."""
    return {(h, s): str(PLAN.path(layout.INGEST_DIR, hyp=h, stack=s)) for h, s in PLAN.sources_of(hyp)}


def figure_points(hyp):
    """(stack, point) pairs of a hypothesis's measured points: one time-series panel each."""
    return list(dict.fromkeys((r.stack, r.point) for r in PLAN.runs(hyp)))


def figure_targets(hyp):
    """Every figure (PNG) of a hypothesis: its evidence figures and time-series panels."""
    d = PLAN.path(layout.FIGURE_DIR, hyp=in_plan(hyp))
    return [str(d / f) for f in plots.files(hyp, figure_points(hyp), PLAN.track) if f.endswith(".png")]


def hypothesis_targets(hyp):
    """Everything `snakemake H<x>` builds: summary, verdict and figures."""
    in_plan(hyp)
    return [
        str(PLAN.path(layout.SUMMARY_CSV, hyp=hyp)),
        str(PLAN.path(layout.VERDICT, hyp=hyp)),
        *figure_targets(hyp),
    ]


def teardown_command_stacks():
    """Run every command stack's teardown (the Snakefile's `onerror:`): a SIGKILLed
    service never ran its own, and containers outlive their `docker run` client."""
    from spark_harness.serving.command import teardown_all

    teardown_all([run.spec["server"] for run in PLAN.runs()])
