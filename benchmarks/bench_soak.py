"""Soak: steady load against the simulator with the sidecar running; no resource growth.

    python benchmarks/bench_soak.py                    # 10 minutes (the issue's soak)
    python benchmarks/bench_soak.py --duration 120     # a shorter one

The three processes of a point run as the workflow starts them (``spark-harness serve``
with the tiered simulator stack, ``spark-harness sidecar``, ``spark-harness loadgen``
with a closed-loop load of ``--users`` for ``--duration`` seconds, and the load
generator's recorder process). Every ``--interval`` seconds this process samples each
one's RSS and open file descriptors (psutil). The first ``--settle`` share of samples
is start-up (imports, allocator and KV-pool warm-up) and is left out of the trend.

Trend test, per process and resource: the OLS slope over time with a 95 % moving-block
bootstrap CI (blocks of 10 samples, since consecutive samples are correlated). Growth is
reported when the CI lies above zero *and* the slope over the soak exceeds a practical
floor (1 MiB of RSS, 1 file descriptor); otherwise "flat". Ratios: RSS and fds at the
end over the settled start (the baseline of the same run), and the load window's
request rate in its last fifth over its first fifth (a slowing server would show here).
Writes the samples and the verdicts as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from spark_harness.analysis.stats import slope
from spark_harness.plan import Plan

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "spark_harness"]
BLOCK = 10
FLOOR = {"rss_mib": 1.0, "fds": 1.0}


def point_spec(duration: float, users: int) -> str:
    """A point of the demo plan's shape on the tiered simulator (stack B)."""
    config = {
        "results_dir": "results",
        "stacks": {"B": {"file": "config/stacks/sim-tiered.yaml"}},
        "defaults": {
            "repetitions": 1,
            "seed": 1,
            "phases": {"idle_s": 2.0, "warmup_s": 5.0, "load_s": duration, "cooldown_s": 0.0},
            "telemetry": {"cadence_ms": 200, "devices": "auto"},
            "workload": {
                "kind": "fixed_context",
                "context_tokens": 256,
                "output_tokens": 16,
                "nonce": True,
            },
            "load": {"kind": "closed", "users": users},
        },
        "hypotheses": {
            "H0": {
                "stacks": ["B"],
                "sweep": [{"key": "load.users", "role": "concurrency", "values": [users]}],
            }
        },
    }
    return Plan(config, REPO).runs()[0].spec_json()


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{path.name} did not appear (process exit {proc.poll()})")
        time.sleep(0.05)


def resources(pid: int) -> tuple[float, int] | None:
    """RSS in MiB and open fds of ``pid`` (None once it has gone)."""
    try:
        p = psutil.Process(pid)
        return p.memory_info().rss / 2**20, p.num_fds()
    except psutil.NoSuchProcess:
        return None


def trend(t: np.ndarray, y: np.ndarray, floor: float, seed: int = 0) -> dict[str, Any]:
    """Slope per hour with a moving-block bootstrap 95 % CI, and the growth verdict."""
    n = len(t)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, max(1, n - BLOCK + 1), size=(2000, -(-n // BLOCK)))
    idx = (starts[:, :, None] + np.arange(BLOCK)).reshape(2000, -1)[:, :n]
    idx = np.minimum(idx, n - 1)
    boot = slope(t[idx], y[idx])
    s = float(slope(t, y))
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    span = float(t[-1] - t[0])
    grows = bool(lo > 0 and s * span > floor)
    return {
        "slope_per_h": s * 3600,
        "ci95_per_h": [float(lo) * 3600, float(hi) * 3600],
        "change_over_soak": s * span,
        "verdict": "growth" if grows else "flat",
    }


def recorder_pid(loadgen: int) -> int | None:
    """The load generator's recorder process (it starts with the load phases)."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(loadgen).children():
            if "spark_harness.loadgen.recorder" in child.cmdline():
                return int(child.pid)
    return None


def soak(duration: float, users: int, interval: float, settle: float, work: Path) -> dict:
    endpoint, sidecar = work / "endpoint.json", work / "sidecar.json"
    log = open(work / "processes.log", "wb")  # noqa: SIM115 — closed below
    stack = str(REPO / "config/stacks/sim-tiered.yaml")
    serve = ["serve", "--stack", stack, "--name", "B", "--endpoint-file", str(endpoint)]
    server = subprocess.Popen(
        [*CLI, *serve, "--workdir", str(work / "server")], stdout=log, stderr=log, cwd=REPO
    )
    procs: dict[str, subprocess.Popen[bytes]] = {"server": server}
    try:
        wait_file(endpoint, server)
        side = ["sidecar", "--endpoint-file", str(endpoint), "--service-file", str(sidecar)]
        procs["sidecar"] = subprocess.Popen(
            [*CLI, *side, "--spool", str(work / "spool.jsonl"), "--cadence-ms", "200"],
            stdout=log,
            stderr=log,
        )
        wait_file(sidecar, procs["sidecar"])
        load = ["loadgen", "--endpoint-file", str(endpoint), "--sidecar-file", str(sidecar)]
        procs["loadgen"] = subprocess.Popen(
            [*CLI, *load, "--spec-json", point_spec(duration, users), "--out", str(work / "point")],
            stdout=log,
            stderr=log,
        )
        samples: dict[str, list[tuple[float, float, int]]] = {n: [] for n in [*procs, "recorder"]}
        t0 = time.monotonic()
        recorder: int | None = None
        while procs["loadgen"].poll() is None:
            now = time.monotonic() - t0
            recorder = recorder or recorder_pid(procs["loadgen"].pid)
            pids = {name: proc.pid for name, proc in procs.items()} | {"recorder": recorder}
            for name, pid in pids.items():
                got = resources(pid) if pid is not None else None
                if got is not None:
                    samples[name].append((now, *got))
            time.sleep(interval)
        if procs["loadgen"].returncode != 0:
            raise RuntimeError(f"loadgen failed ({procs['loadgen'].returncode}); see {log.name}")
    finally:
        for proc in reversed(list(procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        log.close()
    return {"samples": samples, "rates": request_rates(work / "point")}


def request_rates(point: Path) -> dict[str, float]:
    """Requests finished per second in the first and last fifth of the load window."""
    run = json.loads((point / "run.json").read_text())
    start, end = run["phases"]["load"]
    fifth = (end - start) / 5
    done = []
    for line in (point / "requests.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["phase"] == "load" and rec["ok"]:
            done.append(rec["done_ns"])
    first = sum(start <= d < start + fifth for d in done) / (fifth / 1e9)
    last = sum(end - fifth <= d <= end for d in done) / (fifth / 1e9)
    return {"first_fifth_rps": first, "last_fifth_rps": last, "requests": len(done)}


def analyse(raw: dict, settle: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rows in raw["samples"].items():
        arr = np.array(rows, float)
        kept = arr[int(len(arr) * settle) :]
        t, rss, fds = kept[:, 0], kept[:, 1], kept[:, 2]
        out[name] = {
            "samples": len(kept),
            "rss_mib": {
                "start": float(rss[:BLOCK].mean()),
                "end": float(rss[-BLOCK:].mean()),
                "ratio_end_start": float(rss[-BLOCK:].mean() / rss[:BLOCK].mean()),
                **trend(t, rss, FLOOR["rss_mib"]),
            },
            "fds": {
                "start": int(fds[0]),
                "end": int(fds[-1]),
                "max": int(fds.max()),
                **trend(t, fds, FLOOR["fds"]),
            },
        }
    rates = raw["rates"]
    out["load"] = {**rates, "ratio_last_first": rates["last_fifth_rps"] / rates["first_fifth_rps"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=float, default=600.0, help="load window, s (600)")
    ap.add_argument("--users", type=int, default=4, help="closed-loop users (4)")
    ap.add_argument("--interval", type=float, default=2.0, help="sampling interval, s (2)")
    ap.add_argument("--settle", type=float, default=0.2, help="start-up share left out (0.2)")
    ap.add_argument("--out", type=Path, default=REPO / "results/bench/soak.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="spark-soak-") as tmp:
        raw = soak(args.duration, args.users, args.interval, args.settle, Path(tmp))
    result = {"args": {k: str(v) for k, v in vars(args).items()}, **analyse(raw, args.settle)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**result, "raw": raw}, indent=1))
    print(f"load {os.cpu_count()} cpus, load average {os.getloadavg()}")
    print(f"{'process':8} {'resource':8} {'start':>9} {'end':>9} {'slope/h':>9} "
          f"{'95% CI per h':>21} verdict")  # fmt: skip
    for name in ("server", "sidecar", "loadgen", "recorder"):
        for res in ("rss_mib", "fds"):
            r = result[name][res]
            lo, hi = r["ci95_per_h"]
            print(
                f"{name:8} {res:8} {r['start']:9.1f} {r['end']:9.1f} {r['slope_per_h']:9.2f} "
                f"[{lo:9.2f}, {hi:9.2f}] {r['verdict']}"
            )
    ld = result["load"]
    print(
        f"requests {ld['requests']}, rate first fifth {ld['first_fifth_rps']:.1f}/s, "
        f"last fifth {ld['last_fifth_rps']:.1f}/s (ratio {ld['ratio_last_first']:.3f})"
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
