"""A stand-in measured point with the workflow's service pattern, for the SLURM tests.

The real point (simulator, sidecar, load generator) is heavy and lives on other
branches; this one keeps exactly what the SLURM profile must get right and nothing else:

- ``serve`` binds its port, writes the endpoint file at once, becomes ready only after
  ``--startup-s`` and answers ``/work`` after a planted delay, until SIGTERM;
- ``sidecar`` waits for the endpoint file, publishes its service file and spools one
  sample per cadence until SIGTERM;
- ``load`` waits for both files, polls readiness within a timeout (never Snakemake's
  file wait), times requests over real HTTP and keeps the spooled samples of its
  window, so a point measured without its services fails instead of passing;
- ``summarize`` turns two points into a verdict: supported when the treated point's
  median latency exceeds the control's by at least the threshold.

Each process records where it ran (host, SLURM job and step, usable CPUs), so a test
can prove that one point's three processes shared one job on one node.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from spark_harness.contract import wait_for_file
from spark_harness.files import read_json, read_jsonl, write_json
from spark_harness.serving.process import StopSignal, bind_socket


def placement() -> dict[str, Any]:
    """Where this process runs: host, SLURM job and step (if any), the CPUs it may use."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_step_id": os.environ.get("SLURM_STEP_ID"),
        "cpus": sorted(os.sched_getaffinity(0)),
    }


def serve(endpoint_file: Path, delay_ms: float, startup_s: float) -> None:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    write_json(
        endpoint_file,
        {"base_url": f"http://127.0.0.1:{port}", "started_ns": time.time_ns(), **placement()},
    )
    time.sleep(startup_s)  # a server that is not ready at once, as real ones are

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def work(_request: web.Request) -> web.Response:
        await asyncio.sleep(delay_ms / 1000)
        return web.json_response({"delay_ms": delay_ms})

    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/work", work)])
    # run_app turns SIGTERM/SIGINT into a clean shutdown
    web.run_app(app, sock=sock, print=None, handle_signals=True)


def sidecar(endpoint_file: Path, service_file: Path, spool: Path, cadence_ms: float) -> None:
    stop = StopSignal().install()
    wait_for_file(endpoint_file, timeout_s=60)
    spool.parent.mkdir(parents=True, exist_ok=True)
    with spool.open("a") as fh:
        write_json(service_file, {"spool": str(spool), **placement()})
        while not stop.wait(cadence_ms / 1000):
            fh.write(json.dumps({"t_ns": time.time_ns(), "load1": os.getloadavg()[0]}) + "\n")
            fh.flush()


async def _timed_requests(base_url: str, n: int, timeout_s: float) -> list[float]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        deadline = time.monotonic() + timeout_s
        while True:  # readiness: the consumer polls, within the start-up timeout
            try:
                async with session.get(f"{base_url}/health") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base_url} not ready within {timeout_s} s")
            await asyncio.sleep(0.05)
        latencies = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            async with session.get(f"{base_url}/work") as r:
                r.raise_for_status()
                await r.read()
            latencies.append((time.perf_counter_ns() - t0) / 1e6)
        return latencies


def load(
    endpoint_file: Path, sidecar_file: Path, out: Path, point: str, requests: int, timeout_s: float
) -> None:
    endpoint = read_json(wait_for_file(endpoint_file, timeout_s))
    side = read_json(wait_for_file(sidecar_file, timeout_s))
    start_ns = time.time_ns()
    latencies = asyncio.run(_timed_requests(endpoint["base_url"], requests, timeout_s))
    time.sleep(0.3)  # let the sidecar take a sample after the window
    end_ns = time.time_ns()
    samples = [s for s in read_jsonl(side["spool"]) if start_ns <= s["t_ns"] <= end_ns]
    if not samples:
        raise RuntimeError("no telemetry samples in the load window: sidecar not running?")
    write_json(
        out,
        {
            "point": point,
            "latencies_ms": latencies,
            "telemetry_samples": len(samples),
            "placement": {
                "server": {k: endpoint[k] for k in placement()},
                "sidecar": {k: v for k, v in side.items() if k != "spool"},
                "loadgen": placement(),
            },
        },
    )


def summarize(
    hyp: str,
    treated: Path,
    control: Path,
    threshold_ms: float,
    summary_csv: Path,
    verdict_json: Path,
) -> None:
    med = {p: statistics.median(read_json(p)["latencies_ms"]) for p in (treated, control)}
    effect = med[treated] - med[control]
    summary_csv.parent.mkdir(parents=True, exist_ok=True)
    with summary_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["point", "median_ms"])
        for p, m in med.items():
            w.writerow([read_json(p)["point"], f"{m:.3f}"])
    # Only what must not depend on timing noise goes into the verdict, so a local and a
    # cluster run can be compared file for file.
    supported = effect >= threshold_ms
    write_json(
        verdict_json,
        {
            "hypothesis": hyp,
            "verdict": "supported" if supported else "not supported",
            "statistic": "median latency difference, treated - control",
            "threshold_ms": threshold_ms,
            "reasons": [] if supported else ["effect_below_threshold"],
        },
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="point.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--endpoint-file", type=Path, required=True)
    s.add_argument("--delay-ms", type=float, required=True)
    s.add_argument("--startup-s", type=float, default=0.5)
    s = sub.add_parser("sidecar")
    s.add_argument("--endpoint-file", type=Path, required=True)
    s.add_argument("--service-file", type=Path, required=True)
    s.add_argument("--spool", type=Path, required=True)
    s.add_argument("--cadence-ms", type=float, default=100)
    s = sub.add_parser("load")
    s.add_argument("--endpoint-file", type=Path, required=True)
    s.add_argument("--sidecar-file", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--point", required=True)
    s.add_argument("--requests", type=int, default=10)
    s.add_argument("--timeout-s", type=float, default=60)
    s = sub.add_parser("summarize")
    s.add_argument("--hyp", required=True)
    s.add_argument("--treated", type=Path, required=True)
    s.add_argument("--control", type=Path, required=True)
    s.add_argument("--threshold-ms", type=float, required=True)
    s.add_argument("--summary", type=Path, required=True)
    s.add_argument("--verdict", type=Path, required=True)
    a = p.parse_args(argv)
    if a.cmd == "serve":
        serve(a.endpoint_file, a.delay_ms, a.startup_s)
    elif a.cmd == "sidecar":
        sidecar(a.endpoint_file, a.service_file, a.spool, a.cadence_ms)
    elif a.cmd == "load":
        load(a.endpoint_file, a.sidecar_file, a.out, a.point, a.requests, a.timeout_s)
    else:
        summarize(a.hyp, a.treated, a.control, a.threshold_ms, a.summary, a.verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
