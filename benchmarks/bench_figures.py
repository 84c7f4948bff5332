"""Benchmark: draw every figure of the default plan (what `snakemake figures` does).

    python benchmarks/bench_figures.py              # the default plan, 300 requests per run
    python benchmarks/bench_figures.py --repeat 3   # best of three per stage

The summaries are those of the repository's default plan over synthetic runs with the
default planted effects (``spark_harness_testkit.synthetic.World``), written once into ``--data``.
In one process, each stage is timed against a baseline measured in the same session:

- ``baseline``: a bare figure of the same size (one panel, one line) saved as PNG — the
  floor matplotlib charges any figure;
- ``evidence``: every evidence figure of every hypothesis, drawn from its summary and
  saved as PNG, SVG and CSV (per figure);
- ``time series``: every per-point panel, drawn from the ingested Parquet and saved as
  PNG and CSV (per panel);
- ``all figures``: ``plots.draw`` for every hypothesis (the work of all figure jobs).

Two figures from fresh interpreters complete the picture of one figure job's cost:
importing the drawing code, against importing matplotlib's Figure alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def generate(data: Path) -> None:
    """Synthesise, ingest and summarise the default plan once."""
    from spark_harness.analysis import summarize
    from spark_harness.ingest import ingest
    from spark_harness.plan import Plan, load_config
    from spark_harness_testkit.synthetic import World, write_plan

    if (data / "complete").exists():
        return
    plan = Plan(load_config(REPO / "config" / "config.yaml"), base_dir=REPO)
    for (h, s), dirs in write_plan(plan, data, World()).items():
        ingest(dirs, data / "ingest" / h / s)
    for h in plan.hypotheses:
        sources = {k: data / "ingest" / k[0] / k[1] for k in plan.sources_of(h)}
        summarize(h, plan.hypotheses[h], sources, data / "summary" / h)
    (data / "complete").touch()


def best(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Best wall time of ``repeat`` calls and the number of figures one call draws."""
    times, count = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - t)
    return min(times), count


def import_seconds(module: str, repeat: int) -> float:
    """Median time of a fresh interpreter importing ``module``."""
    times = []
    for _ in range(max(repeat, 3)):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(tempfile.gettempdir()) / "spark-harness-bench-figures"
    ap.add_argument("--data", type=Path, default=default, help="synthetic results (reused)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    from spark_harness import plots
    from spark_harness.plan import Plan, load_config
    from spark_harness.plots import style
    from spark_harness.plots.data import Ingested, Summary
    from spark_harness.plots.hypotheses import FIGURES
    from spark_harness.plots.render import write_csv
    from spark_harness.plots.timeseries import draw_point

    generate(args.data)
    plan = Plan(load_config(REPO / "config" / "config.yaml"), base_dir=REPO)
    out = args.data / "figures"
    points = {
        h: list(dict.fromkeys((r.stack, r.point) for r in plan.runs(h))) for h in plan.hypotheses
    }
    ingest = {
        h: {s: args.data / "ingest" / h / s for s in plan.stacks_of(h)} for h in plan.hypotheses
    }

    def baseline() -> int:
        with style.styled():
            fig, axes = style.new_figure(1)
            axes[0].plot([0, 1, 2], [1, 0, 2])
            style.save(fig, out / "baseline.png")
        return 1

    def evidence() -> int:
        n = 0
        with style.styled():
            for hyp, specs in FIGURES.items():
                summary = Summary(args.data / "summary" / hyp)
                for spec in specs:
                    fig, table = spec.draw(summary)
                    style.save(fig, out / f"{hyp}-{spec.name}.png", out / f"{hyp}-{spec.name}.svg")
                    write_csv(table, out / f"{hyp}-{spec.name}.csv")
                    n += 1
        return n

    def timeseries() -> int:
        n = 0
        with style.styled():
            for hyp, pts in points.items():
                verdict = Summary(args.data / "summary" / hyp).verdict
                for stack, point in pts:
                    fig, table = draw_point(Ingested(ingest[hyp]), stack, point, verdict)
                    style.save(fig, out / f"ts-{hyp}-{stack}-{point}.png")
                    write_csv(table, out / f"ts-{hyp}-{stack}-{point}.csv")
                    n += 1
        return n

    def everything() -> int:
        return sum(
            len(plots.draw(h, args.data / "summary" / h, out / h, ingest[h], points[h]))
            for h in plan.hypotheses
        )

    out.mkdir(parents=True, exist_ok=True)
    baseline()  # warm matplotlib's font cache and imports before timing anything
    base, _ = best(lambda: sum(baseline() for _ in range(10)), args.repeat)
    base /= 10
    rows = [("baseline (bare figure, PNG)", base, 1)]
    for name, fn in (("evidence figure", evidence), ("time-series panel", timeseries)):
        total, n = best(fn, args.repeat)
        rows.append((name, total / n, n))
    total, files = best(everything, args.repeat)

    print(f"{'stage':32} {'s per figure':>12} {'x baseline':>10} {'figures':>8}")
    for name, per, n in rows:
        print(f"{name:32} {per:12.3f} {per / base:10.1f} {n:8d}")
    ratio = total / base
    print(f"all figures of the default plan: {total:.1f} s ({files} files, {ratio:.0f} x baseline)")
    mpl = import_seconds("matplotlib.figure", args.repeat)
    render = import_seconds("spark_harness.plots.render", args.repeat)
    print(
        f"fresh interpreter: import matplotlib.figure {mpl:.2f} s; "
        f"import spark_harness.plots.render {render:.2f} s ({render / mpl:.2f} x)"
    )


if __name__ == "__main__":
    main()
