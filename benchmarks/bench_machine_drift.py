"""Does this machine's speed drift? A fixed CPU workload timed in consecutive windows.

H0 on the CPU engine fails the plan's 10 % gate on the p99's spread across repetitions
(docs/REAL_ENGINE.md): the engine's decode step ran 6-7 ms in some stretches of minutes
and 8-10 ms in others, within one engine as between engines. This benchmark takes vLLM,
the load generator and the network out: one process on one core repeats a fixed step
of work for ``--minutes`` and reports, per ``--window-s`` window, the step's p50 and p99
time, then the CoV of each across windows (the statistic H0's gate reads across
repetitions) and the slowest window's p50 over the fastest's. Two steps, alternating:

- ``matmul``: the tiny model's shapes in float32 (16 rows through 4 layers of 256 -> 768
  -> 256, numpy on one BLAS thread): memory and vector units, as the engine's forward;
- ``python``: interpreter work (building and summing a list of 2,000 ints), as vLLM's
  scheduler, API server and the load generator.

A CoV near 0 says the machine keeps its speed and the engine's spread is its own; a CoV
near the engine's says the gate is reading the machine.

``--neighbour CPU`` runs a busy process (the ``python`` step in a loop) on that core in
every other window, as the load generator and vLLM's API server load the core beside
the engine's: the windows' table then says, per step, how much slower this core's work
runs while its neighbour is busy.

    python benchmarks/bench_machine_drift.py [--minutes 10] [--window-s 20] [--cpu 0]
                                             [--neighbour 1]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy: one BLAS thread
os.environ.setdefault("OMP_NUM_THREADS", "1")

import multiprocessing
import statistics
import time
from collections.abc import Callable

import numpy as np

LAYERS, ROWS, HIDDEN, INNER = 4, 16, 256, 768


def matmul_step() -> Callable[[], object]:
    """One forward of the tiny model's shapes (fixed seeded weights)."""
    rng = np.random.default_rng(0)
    w1 = [rng.standard_normal((HIDDEN, INNER), dtype=np.float32) for _ in range(LAYERS)]
    w2 = [rng.standard_normal((INNER, HIDDEN), dtype=np.float32) / 32 for _ in range(LAYERS)]
    x0 = rng.standard_normal((ROWS, HIDDEN), dtype=np.float32)

    def step() -> object:
        x = x0
        for a, b in zip(w1, w2, strict=True):
            x = np.tanh(x @ a) @ b
        return x

    return step


def python_step() -> object:
    return sum([i * i for i in range(2000)])


def busy(cpu: int) -> None:
    """The neighbour: interpreter work on ``cpu`` until terminated."""
    os.sched_setaffinity(0, {cpu})
    while True:
        python_step()


def cov(xs: list[float]) -> float:
    return statistics.stdev(xs) / statistics.fmean(xs) if len(xs) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--window-s", type=float, default=20.0)
    ap.add_argument("--cpu", type=int, default=0, help="the core to run on")
    ap.add_argument("--neighbour", type=int, help="a core kept busy in every other window")
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    steps = {"matmul": matmul_step(), "python": python_step}
    windows: dict[str, list[tuple[float, float]]] = {k: [] for k in steps}
    busy_windows: list[bool] = []
    print(f"load average at start: {os.getloadavg()[0]:.2f}; CPU {args.cpu}")
    print(
        "\n| window | start s | neighbour | matmul p50 µs | p99 | python p50 µs | p99 |"
        "\n|---|---|---|---|---|---|---|"
    )
    t_start = time.monotonic()
    end = t_start + args.minutes * 60
    while time.monotonic() < end:
        neighbour = None
        if args.neighbour is not None and len(busy_windows) % 2 == 1:
            neighbour = multiprocessing.Process(target=busy, args=(args.neighbour,), daemon=True)
            neighbour.start()
        busy_windows.append(neighbour is not None)
        w_start = time.monotonic()
        times: dict[str, list[int]] = {k: [] for k in steps}
        while time.monotonic() - w_start < args.window_s:
            for name, step in steps.items():
                t0 = time.perf_counter_ns()
                step()
                times[name].append(time.perf_counter_ns() - t0)
        if neighbour is not None:
            neighbour.terminate()
            neighbour.join()
        cells = ["busy" if busy_windows[-1] else "idle"]
        for name, ts in times.items():
            p50, p99 = (float(np.percentile(ts, q)) / 1e3 for q in (50, 99))
            windows[name].append((p50, p99))
            cells += [f"{p50:.1f}", f"{p99:.1f}"]
        n = len(windows["matmul"])
        print(f"| {n} | {w_start - t_start:.0f} | " + " | ".join(cells) + " |", flush=True)
    print(
        "\n| step | neighbour | windows | p50 CoV | p99 CoV | slowest / fastest p50 | mean p50 µs |"
        "\n|---|---|---|---|---|---|---|"
    )
    for name, ws in windows.items():
        for state in sorted(set(busy_windows)):
            sel = [w for w, b in zip(ws, busy_windows, strict=True) if b == state]
            p50s, p99s = [w[0] for w in sel], [w[1] for w in sel]
            print(
                f"| {name} | {'busy' if state else 'idle'} | {len(sel)} | {cov(p50s):.1%} | "
                f"{cov(p99s):.1%} | {max(p50s) / min(p50s):.2f} | {statistics.fmean(p50s):.1f} |"
            )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
