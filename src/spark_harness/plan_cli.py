"""``spark-harness plan``: list the points of a plan, or the commands they would run.

Nothing is started: this is the dry view of what `snakemake H_all` would measure, with
each point's resolved spec, and for command stacks the exact server commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from spark_harness import layout
from spark_harness.plan import Plan, PlanError, Run, layered_config
from spark_harness.plan_progress import duration


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="list the points of a plan (and the commands they would run)",
        description="Expand a config into its measured points without running anything.",
    )
    p.add_argument(
        "--configfile",
        type=Path,
        action="append",
        help="config file(s), later ones override, layered as `snakemake --configfile` "
        "layers them: over config/config.yaml unless one names its `track`",
    )
    p.add_argument(
        "--workflow-root",
        type=Path,
        help="the folder holding the Snakefile, where config/config.yaml and stack files "
        "are found (default: the nearest one from the current folder up)",
    )
    p.add_argument("--hyp", action="append", help="only these hypotheses")
    p.add_argument("--stack", action="append", help="only these stacks")
    p.add_argument(
        "--specs", action="store_true", help="print each point's resolved spec (JSON lines)"
    )
    p.add_argument(
        "--commands", action="store_true", help="print the server commands of each point"
    )
    p.set_defaults(func=run)


def workflow_root(start: Path) -> Path:
    """The nearest folder from ``start`` up that holds the Snakefile: Snakemake resolves
    stack files from there, whatever the current folder."""
    for d in (start, *start.parents):
        if (d / "Snakefile").is_file():
            return d
    raise PlanError(f"no Snakefile in {start} or above: pass --workflow-root")


def run(args: argparse.Namespace) -> int:
    try:
        root = (args.workflow_root or workflow_root(Path.cwd().resolve())).resolve()
        plan = Plan(layered_config(args.configfile or [], root), base_dir=root)
        plan.check_names(args.hyp or [], args.stack or [])
        # a hypothesis's target also runs the points it needs (U_work's, an analytical
        # one's sources): they are part of what it costs
        runs = [
            r
            for r in (plan.runs_for(args.hyp) if args.hyp else plan.runs())
            if not args.stack or r.stack in args.stack
        ]
        _print(plan, runs, args)
    except BrokenPipeError:
        # the reader went away (`plan | head`): stop quietly, and keep Python's own
        # flush at exit from failing on the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except PlanError as e:
        print(f"spark-harness plan: {e}", file=sys.stderr)
        return 2
    if not (args.specs or args.commands):
        extra = list(dict.fromkeys(r.hyp for r in runs if args.hyp and r.hyp not in args.hyp))
        needed = f" (with {', '.join(extra)}, which they need)" if extra else ""
        print(f"{len(runs)} runs{needed}, {expected_duration(runs)}", file=sys.stderr)
    return 0


def expected_duration(runs: list[Run]) -> str:
    """How long the runs should take one after another, phases and server start-ups."""
    phases = sum(r.phases_s for r in runs)
    startups = sum(r.startup_estimate_s for r in runs)
    return (
        f"expected {duration(phases + startups)} one after another "
        f"({duration(phases)} of phases + {duration(startups)} of estimated server start-ups)"
    )


def _print(plan: Plan, runs: list[Run], args: argparse.Namespace) -> None:
    for r in runs:
        label = f"{r.hyp}/{r.stack}/{r.point}/r{r.rep}"
        if args.specs:
            print(r.spec_json())
        elif args.commands:
            print(f"# {label}")
            # the serve rule's --workdir, absolute as `spark-harness serve` makes it (the
            # results folder is relative to the workflow root, where Snakemake runs)
            scratch = plan.base_dir / plan.path(layout.SCRATCH_DIR, **r.wildcards)
            workdir = (scratch / "server").resolve()
            print(server_commands(r.spec["server"], workdir))
        else:
            print(label)


def server_commands(server: dict, workdir: Path = Path("WORKDIR")) -> str:
    """What ``spark-harness serve`` would run for a stack in ``workdir``: a command
    stack's processes, environment, files and teardown, ports as ``<port:NAME>``."""
    if server["kind"] == "sim":
        return "spark-harness serve --stack-json " + shlex.quote(json.dumps(server, sort_keys=True))
    if server["kind"] == "external":
        return f"(external endpoint {server['external']['base_url']}: nothing is started)"
    from spark_harness.serving.command import CommandStackError, describe

    try:
        return describe(server, workdir)
    except CommandStackError as e:
        raise PlanError(f"stack {server.get('name')!r}: {e}") from e
