# Shared helpers: validate the config, expand the plan, name every file.

import importlib.util
import json
from pathlib import Path

from snakemake.utils import validate

from spark_harness import layout
from spark_harness import plots
from spark_harness import registry
from spark_harness import verdict_table
from spark_harness.backfill import imported_runs
from spark_harness.plan import Plan, PlanError


try:
    # the plan's own checks first: they name the bad key in one line, where Snakemake's
    # validate() prints the whole schema and config
    PLAN = Plan(config, base_dir=Path(workflow.basedir))
except PlanError as e:
    raise WorkflowError(str(e))
validate(config, schema="../schemas/config.schema.yaml")  # fills the schema's defaults

RESULTS = PLAN.results
#: the registry entry of every hypothesis of the plan (its track's; plugins included)
ENTRIES = {h: registry.lookup(h, PLAN.track) for h in PLAN.hypotheses}
#: the software of every rule that runs something (`--software-deployment-method conda`)
CONDA_ENV = "../envs/harness.yaml"


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
    if hyp in PLAN.not_applicable:
        raise WorkflowError(f"{hyp} is not applicable to this plan: {PLAN.not_applicable[hyp]}")
    if hyp not in PLAN.hypotheses:
        raise WorkflowError(f"{hyp} is not in the plan (config `hypotheses`: {', '.join(PLAN.hypotheses)})")
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


def point_log(name):
    """The log file of one of a point's processes (server, sidecar, loadgen)."""
    return res(str(Path(layout.LOG_DIR, f"{name}.log")))


def u_work_input(w):
    """H2A/H2B read U_work from H0 at run time: a new U_work reruns them."""
    run = run_of(w)
    return [str(PLAN.path(layout.U_WORK, stack=w.stack))] if PLAN.needs_u_work(run) else []


def order_input(w):
    """Under `order: alternate` (H9's AB/BA pairs) each run waits for the previous one."""
    prev = PLAN.previous_in_order(run_of(w))
    return [str(PLAN.path(layout.RUN, **prev.wildcards))] if prev else []


COMPARE_DIR = f"{RESULTS}/figures/{registry.COMPARE}"
COMPARISONS = registry.comparisons(PLAN.hypotheses)
#: the report's introduction (workflow/report/workflow.rst)
INTRO = "workflow/report/workflow.rst"


def compare_targets():
    """The PNG of every A-vs-B chart of the plan."""
    return [f"{COMPARE_DIR}/{c.name}.png" for c in COMPARISONS]


def plan_targets():
    """Everything `H_all` builds (and `archive` bundles): every hypothesis's targets, the
    A-vs-B charts and the verdict table."""
    return [
        *(f for h in PLAN.hypotheses for f in hypothesis_targets(h)),
        *compare_targets(),
        res(verdict_table.VERDICTS_CSV),
    ]


def front_page():
    """The report's front page: the verdict table where it was written, else the intro."""
    page = Path(RESULTS, verdict_table.FRONT_PAGE)
    return str(page.resolve()) if page.is_file() else INTRO


def print_verdicts():
    """The verdict table at the end of a run (the Snakefile's `onsuccess:`), read from
    the verdict files themselves: a target of one hypothesis rewrites its verdict, not
    the table file."""
    rows = verdict_table.collect(Path(RESULTS))
    if rows:
        where = Path(RESULTS, verdict_table.SUMMARY)
        print(f"\nVerdicts at a glance ({where}):\n\n{verdict_table.markdown(rows)}")


def teardown_command_stacks():
    """Run every command stack's teardown (the Snakefile's `onerror:`): a SIGKILLed
    service never ran its own, and containers outlive their `docker run` client."""
    from spark_harness.serving.command import teardown_all

    teardown_all([run.spec["server"] for run in PLAN.runs()])
