"""``spark-harness progress``: how far a plan has got, and when it should end.

Each point's load generator prints it as it starts (``loadgen --progress-fd``: on the
job's own stderr while its log takes the rest), so a person watching Snakemake sees
points done / total and an ETA without opening a log. A point is done when its
``run.json`` exists; the pace is measured from the gaps between their times, or taken
from the plan's own estimate until a few points have run.

The Snakefile hands it the plan's size through the environment (:func:`export`): a
rule's shell text and params are rerun triggers, so a plan edit put there would rerun
every measured point.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spark_harness import layout

if TYPE_CHECKING:  # the progress line runs at every point's start: no YAML/schema imports
    from spark_harness.plan import Plan

#: points whose gaps give the measured pace (recent ones: a campaign resumed after a
#: pause must not count the pause)
PACE_WINDOW = 10
#: gaps needed before the measured pace replaces the plan's estimate
MIN_GAPS = 2
#: the plan's results folder, points and estimated seconds per point, as JSON
ENV = "SPARK_HARNESS_PROGRESS"


def export(plan: Plan, targets: Iterable[str] = ()) -> None:
    """Put the plan's size where every loadgen job's ``spark-harness progress`` finds it:
    the runs its targets measure when every target is a hypothesis (``snakemake H2A``
    runs H2A's and what H2A needs), else the whole plan's."""
    targets = list(targets)
    if targets and all(t in plan.hypotheses for t in targets):
        runs = plan.runs_for(targets)
        dirs: list[str] | None = sorted({f"{r.hyp}/{r.stack}" for r in runs})
    else:
        runs, dirs = plan.runs(), None
    per_point = sum(r.expected_s for r in runs) / len(runs) if runs else 0.0
    os.environ[ENV] = json.dumps(
        {
            "results": plan.results,
            "total": len(runs),
            "per_point_s": round(per_point, 1),
            "dirs": dirs,
        }
    )


def finished_times(results: Path, dirs: Sequence[str] | None = None) -> list[float]:
    """Modification times of the points' ``run.json`` under ``results`` (those of the
    ``hyp/stack`` folders in ``dirs`` if given), oldest first."""
    pairs = [d.split("/", 1) for d in dirs] if dirs is not None else [["*", "*"]]
    patterns = [layout.RUN.format(hyp=h, stack=s, point="*", rep="*") for h, s in pairs]
    return sorted(p.stat().st_mtime for pat in patterns for p in results.glob(pat))


def pace_s(times: list[float], estimate_s: float) -> tuple[float, str]:
    """Seconds per point: the median recent gap between finished points (what the
    machine actually does, start-ups and parallel jobs included), else the estimate."""
    gaps = [b - a for a, b in itertools.pairwise(times)][-PACE_WINDOW:]
    if len(gaps) >= MIN_GAPS:
        return statistics.median(gaps), "measured"
    return estimate_s, "planned"


def status(results: Path, total: int, estimate_s: float, dirs: Sequence[str] | None = None) -> str:
    """One line: points done / total, the pace and the time left (of the runs in the
    ``hyp/stack`` folders ``dirs`` when given)."""
    times = finished_times(results, dirs)
    done = min(len(times), total)
    per_point, source = pace_s(times, estimate_s)
    left = (total - done) * per_point
    end = time.strftime("%H:%M", time.localtime(time.time() + left))
    return (
        f"progress: {done}/{total} points done, about {duration(per_point)} a point "
        f"({source}), ETA {duration(left)} (at {end})"
    )


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 40 s, 12 min, 3.5 h."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "progress",
        help="points done / total and an ETA for a results folder",
        description="Count the finished points of a plan (run.json files) and estimate the "
        "time left. The loadgen rule prints this line as each point starts.",
    )
    p.add_argument("results", type=_folder, nargs="?", help="the plan's results folder")
    p.add_argument("--total", type=_count, help="points in the plan")
    p.add_argument(
        "--per-point-s",
        type=_seconds,
        help="the plan's estimate of seconds per point, until enough points have run "
        "(`spark-harness plan` prints the plan's points and expected time)",
    )
    p.epilog = f"Inside the workflow all three come from ${ENV}."
    p.set_defaults(func=run)


def _folder(text: str) -> Path:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return Path(text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of points (1 or more)")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def _line(
    results: str | Path | None,
    total: int | None,
    per_point: float | None,
    dirs: Sequence[str] | None = None,
) -> str | None:
    """The status line, or None when one of the three is unknown."""
    if results is None or total is None or per_point is None:
        return None
    return status(Path(results), int(total), float(per_point), dirs)


def report(fd: int) -> None:
    """Write the status line of the plan in the environment to ``fd``; say nothing when
    there is none (a point run outside the workflow) or the fd is closed."""
    given = json.loads(os.environ.get(ENV, "{}"))
    line = _line(
        given.get("results"), given.get("total"), given.get("per_point_s"), given.get("dirs")
    )
    if line is not None:
        with contextlib.suppress(OSError):
            os.write(fd, (line + "\n").encode())


def run(args: argparse.Namespace) -> int:
    given = json.loads(os.environ.get(ENV, "{}"))
    line = _line(
        args.results or given.get("results"),
        args.total if args.total is not None else given.get("total"),
        args.per_point_s if args.per_point_s is not None else given.get("per_point_s"),
    )
    if line is None:
        print(
            f"spark-harness progress: give RESULTS, --total and --per-point-s (or set ${ENV})",
            file=sys.stderr,
        )
        return 2
    print(line, file=sys.stderr)
    return 0
