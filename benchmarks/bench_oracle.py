"""The verdict oracle: simulator worlds with planted truth, through the real pipeline.

    python benchmarks/bench_oracle.py                    # every world, once
    python benchmarks/bench_oracle.py --runs 3           # three runs of each world
    python benchmarks/bench_oracle.py --world demo --world H9_slow_g3

Each world of ``benchmarks/oracle/worlds.yaml`` is the demo plan (config/config.yaml)
with a patch: the hypotheses it runs and the settings that make a hypothesis hold or
not. A world runs as a user would run the plan, in a fresh copy of the workflow:
``snakemake --cores 1 verdicts`` (servers, telemetry sidecars, load generator, ingest,
summaries and verdicts; no figures). The table compares each verdict with the world's
planted truth:

- ``right``: the verdict is the truth;
- ``WRONG``: a decisive verdict in the other direction (supported where the effect is
  absent, or not supported where it is planted);
- ``undecided``: inconclusive, or invalid where the truth is decisive.

The table is printed and written, with every world's verdicts.csv, under ``--out``
(default results/oracle/, on the repository's device, so G3 files and fio land where
the demo's do).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spark_harness.plan import deep_merge, load_config

ROOT = Path(__file__).resolve().parents[1]
WORLDS = ROOT / "benchmarks" / "oracle" / "worlds.yaml"
DECISIVE = ("supported", "not supported")


@dataclass(frozen=True)
class World:
    name: str
    about: str
    hypotheses: tuple[str, ...]  # empty: the demo plan's
    patch: dict[str, Any]
    truth: dict[str, str]


def load_worlds(path: Path = WORLDS) -> list[World]:
    raw = yaml.safe_load(path.read_text())["worlds"]
    return [
        World(
            name,
            w["about"].strip(),
            tuple(w.get("hypotheses", ())),
            w.get("patch", {}) or {},
            w["truth"],
        )
        for name, w in raw.items()
    ]


def world_config(world: World) -> dict[str, Any]:
    """config/config.yaml patched for ``world``: its hypotheses, with their analytical
    sources, and its settings (mappings merge, lists replace)."""
    cfg = deep_merge(load_config(ROOT / "config" / "config.yaml"), world.patch)
    if world.hypotheses:
        keep = set(world.hypotheses)
        for h in world.hypotheses:
            keep |= set(cfg["hypotheses"][h].get("analytical", {}).get("from", []))
        cfg["hypotheses"] = {h: v for h, v in cfg["hypotheses"].items() if h in keep}
    return cfg


def copy_workflow(dest: Path) -> None:
    """The files a user's checkout holds (git's list), nothing generated."""
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for f in filter(None, files):
        src = ROOT / f.decode()
        if src.is_symlink() or src.is_file():
            (dest / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f.decode(), follow_symlinks=False)


def run_world(world: World, where: Path) -> tuple[dict[str, str], float, int]:
    """Run ``world`` in a fresh copy under ``where``; its verdicts, wall seconds, status."""
    if where.exists():
        shutil.rmtree(where)
    copy_workflow(where)
    (where / "config" / "config.yaml").write_text(yaml.safe_dump(world_config(world)))
    t0 = time.monotonic()
    with (where / "snakemake.log").open("w") as log:
        rc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "1", "verdicts"],
            cwd=where,
            stdout=log,
            stderr=subprocess.STDOUT,
        ).returncode
    wall = time.monotonic() - t0
    table = where / "results" / "summary" / "verdicts.csv"
    verdicts: dict[str, str] = {}
    if table.exists():
        with table.open() as f:
            verdicts = {r["hypothesis"]: r["status"] for r in csv.DictReader(f)}
    return verdicts, wall, rc


def grade(truth: str, verdict: str | None) -> str:
    if verdict == truth:
        return "right"
    if verdict in DECISIVE and truth in DECISIVE:
        return "WRONG"
    return "undecided"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="runs of each world (default 1)")
    ap.add_argument("--world", action="append", help="run only this world (repeatable)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "oracle")
    ap.add_argument("--worlds", type=Path, default=WORLDS, help="the worlds file")
    args = ap.parse_args(argv)
    worlds = [w for w in load_worlds(args.worlds) if not args.world or w.name in args.world]
    rows: list[list[str]] = []
    counts = {"right": 0, "WRONG": 0, "undecided": 0}
    for w in worlds:
        results = []
        for i in range(args.runs):
            where = args.out / w.name / f"run{i}"
            verdicts, wall, rc = run_world(w, where)
            results.append(verdicts)
            print(f"{w.name} run {i}: {wall:.0f} s, snakemake exit {rc}", flush=True)
        for hyp, truth in w.truth.items():
            got = [r.get(hyp, "missing") for r in results]
            grades = [grade(truth, g) for g in got]
            for g in grades:
                counts[g] += 1
            rows.append([w.name, hyp, truth, " / ".join(got), " / ".join(grades)])
    header = ["world", "hypothesis", "planted truth", "verdicts", "grade"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"cells: {sum(counts.values())}; right {counts['right']}, "
        f"WRONG {counts['WRONG']}, undecided {counts['undecided']}",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "oracle.md").write_text(text + "\n")
    return 1 if counts["WRONG"] else 0


if __name__ == "__main__":
    sys.exit(main())
