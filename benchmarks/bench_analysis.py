"""Benchmark: ingest and summarise 10 million request rows with 1 million telemetry samples.

    python benchmarks/bench_analysis.py                 # full size (about 8 GB of JSONL)
    python benchmarks/bench_analysis.py --scale 0.05    # a quick look
    python benchmarks/bench_analysis.py --raw-parquet   # runs with the load generator's Parquet

The data are synthetic runs in the exact contract format (``spark_harness_testkit.synthetic``): one
H0 concurrency sweep of stack A, ``--runs`` runs of equal size, every request with 16
streamed events (the demo plan's output length). Each stage runs in a fresh process so
its peak memory is its own:

- ``parse``: the baseline, polars reading every ``requests.jsonl`` with the contract
  schema and every ``telemetry.jsonl`` (the floor any ingest pays: JSON parsing);
- ``ingest``: ``spark_harness.ingest.ingest`` of all runs into one ingest folder;
- ``summarize``: ``spark_harness.analysis.summarize("H0", ...)`` on that folder.

With ``--raw-parquet`` every run also has the ``requests.parquet`` and
``telemetry.parquet`` the load generator writes when its point ends
(``ingest.write_raw_copies``; its cost, paid once per point at measurement time, is
printed), and ingest reads those instead of the JSON lines; without it, any such file is
removed first. Figures are wall seconds, peak RSS, and each stage's time as a ratio to
the baseline measured in the same session. Goal (issues 6 and 15):
ingest + summarise < 30 s, < 4 GB peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USERS = (1, 2, 4, 8, 16)
CADENCE_MS = 200.0


def raw_parquet(dirs: list[Path], wanted: bool) -> float:
    """Give every run the load generator's ``requests.parquet`` and ``telemetry.parquet``
    (or take them away); return the seconds spent writing them."""
    from spark_harness.ingest import RAW_REQUESTS, RAW_TELEMETRY, write_raw_copies

    t0 = time.perf_counter()
    for d in dirs:
        if not wanted:
            (d / RAW_REQUESTS).unlink(missing_ok=True)
            (d / RAW_TELEMETRY).unlink(missing_ok=True)
        elif not (d / RAW_TELEMETRY).exists():
            write_raw_copies(d)
    return time.perf_counter() - t0


def generate(data: Path, rows: int, runs: int, samples: int) -> list[Path]:
    """Write the runs once; later invocations with the same sizes reuse them."""
    from spark_harness_testkit.synthetic import RunSpec, write_run

    marker = data / f"complete-{rows}-{runs}-{samples}"
    per_run, per_samples = rows // runs, samples // runs
    window_s = per_samples * CADENCE_MS / 1000 - 2.0  # idle + warmup + cooldown: 2 s
    specs = []
    for i in range(runs):
        users = USERS[i % len(USERS)]
        p50 = 40.0 + 2 * users
        specs.append(
            RunSpec(
                "H0",
                "A",
                f"users-{users}",
                i // len(USERS),
                axes={"load.users": users},
                n_requests=per_run - 10,
                n_before=10,
                idle_s=1.0,
                warmup_s=0.5,
                window_s=window_s,
                cooldown_s=0.5,
                ttft_p50_ms=p50,
                ttft_p99_ms=p50 * (3.0 if users >= 8 else 1.5),
                seed=i,
            )
        )
    if not marker.exists():
        for rs in specs:
            write_run(data / "results", rs)
        marker.touch()
    return sorted((data / "results" / "raw" / "H0" / "A").glob("*/r*"))


def stage(name: str, data: Path, dirs: list[Path]) -> dict[str, float]:
    """Run one stage in this process; return its wall time and peak RSS."""
    import polars as pl

    from spark_harness.analysis import summarize
    from spark_harness.ingest import ingest, request_schema

    out = data / "ingest" / "H0" / "A"
    t0 = time.perf_counter()
    if name == "parse":
        schema = request_schema()
        n = 0
        for d in dirs:
            n += pl.read_ndjson(d / "requests.jsonl", schema=schema).height
            pl.read_ndjson(d / "telemetry.jsonl", infer_schema_length=None)
    elif name == "ingest":
        ingest(dirs, out)
        n = pl.scan_parquet(out / "requests.parquet").select(pl.len()).collect().item()
    elif name == "summarize":
        hyp = {
            "title": "bench",
            "stacks": ["A"],
            "sweep": [{"key": "load.users", "role": "concurrency", "values": list(USERS)}],
        }
        summarize("H0", hyp, {("H0", "A"): out}, data / "summary" / "H0")
        n = pl.scan_parquet(out / "requests.parquet").select(pl.len()).collect().item()
    else:
        raise SystemExit(f"unknown stage {name}")
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"stage": name, "wall_s": wall, "peak_rss_mb": peak_mb, "rows": n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of the full size")
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "spark-harness-bench")
    p.add_argument("--raw-parquet", action="store_true", help="runs carry the Parquet copies")
    p.add_argument("--stage", help=argparse.SUPPRESS)
    a = p.parse_args()
    rows, samples = int(10_000_000 * a.scale), int(1_000_000 * a.scale)
    data = a.data / f"scale-{a.scale:g}"
    if a.stage:
        dirs = generate(data, rows, a.runs, samples)
        print(json.dumps(stage(a.stage, data, dirs)))
        return
    t0 = time.perf_counter()
    dirs = generate(data, rows, a.runs, samples)
    print(
        f"data: {len(dirs)} runs, {rows:,} requests, {samples:,} samples in {data} "
        f"({time.perf_counter() - t0:.0f} s to prepare)"
    )
    spent = raw_parquet(dirs, a.raw_parquet)
    if a.raw_parquet:
        print(f"load generator's Parquet copies: {spent:.1f} s to write (new files only)")
    results = {}
    for name in ("parse", "ingest", "summarize"):
        cmd = [
            sys.executable,
            __file__,
            "--stage",
            name,
            "--scale",
            str(a.scale),
            "--runs",
            str(a.runs),
            "--data",
            str(a.data),
        ]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ)
        results[name] = json.loads(res.stdout.strip().splitlines()[-1])
    base = results["parse"]["wall_s"]
    print(f"{'stage':<10} {'wall s':>8} {'x parse':>8} {'peak MB':>8} {'rows':>12}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['wall_s']:8.1f} {r['wall_s'] / base:8.2f} "
            f"{r['peak_rss_mb']:8.0f} {r['rows']:12,}"
        )
    total = results["ingest"]["wall_s"] + results["summarize"]["wall_s"]
    peak = max(results["ingest"]["peak_rss_mb"], results["summarize"]["peak_rss_mb"])
    print(f"ingest + summarize: {total:.1f} s (goal < 30 s), peak {peak:.0f} MB (goal < 4096 MB)")


if __name__ == "__main__":
    main()
