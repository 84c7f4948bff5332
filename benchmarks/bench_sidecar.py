"""CPU cost of the telemetry sidecar at 200 ms and 50 ms cadence.

    python benchmarks/bench_sidecar.py [--seconds 15]

For each cadence it runs, one after another in this session:

- **baseline**: the sidecar's loop with no sampler (ticks, timestamps, empty sample
  lines to the spool): the floor any sampling loop pays;
- **sidecar**: ``python -m spark_harness.telemetry sidecar`` exactly as the workflow
  starts it, against a server stand-in whose metrics endpoint serves a vLLM-sized
  Prometheus exposition (two engines, every vLLM/KVBM family the mapping knows, plus
  histograms) and whose process I/O is read from ``/proc``.

CPU is the sidecar process's user+system time over a steady window (start-up excluded),
as % of one core; the ratio is sidecar / baseline at the same cadence. The goal is under
2 % of one core at 200 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from spark_harness import contract
from spark_harness.clock import Clock

WARMUP_S = 2.0


def exposition() -> bytes:
    """A Prometheus exposition shaped like a two-engine vLLM + KVBM server's."""
    reg = CollectorRegistry()
    labels = ["engine", "model_name"]
    gauges = [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "kvbm_host_cache_hit_rate",
        "kvbm_disk_cache_hit_rate",
    ]
    counters = [
        "vllm:prefix_cache_queries",
        "vllm:prefix_cache_hits",
        "vllm:num_preemptions",
        "vllm:prompt_tokens",
        "vllm:generation_tokens",
        "vllm:request_success",
        "kvbm_offload_blocks_d2h",
        "kvbm_offload_blocks_h2d",
        "kvbm_onboard_blocks_h2d",
        "kvbm_onboard_blocks_d2d",
        "kvbm_matched_tokens",
    ]
    hists = ["vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds",
             "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds",
             "sim_kv_g3_fetch_seconds"]  # fmt: skip
    for name in gauges:
        g = Gauge(name, name, labels, registry=reg)
        for e in ("0", "1"):
            g.labels(e, "llama").set(0.5)
    for name in counters:
        c = Counter(name, name, labels, registry=reg)
        for e in ("0", "1"):
            c.labels(e, "llama").inc(1000)
    buckets = [0.001 * 2**i for i in range(18)]
    for name in hists:
        h = Histogram(name, name, labels, buckets=buckets, registry=reg)
        for e in ("0", "1"):
            for v in (0.003, 0.02, 0.2):
                h.labels(e, "llama").observe(v)
    return generate_latest(reg)


def serve_exposition(port_file: Path) -> None:
    """Child mode: serve the exposition with aiohttp (keep-alive, like the simulator)."""
    body = exposition()

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        port_file.write_text(str(port))
        await asyncio.Event().wait()

    asyncio.run(run())


def cpu_of(pid: int, seconds: float) -> float:
    """% of one core used by ``pid`` over ``seconds``, after a warm-up."""
    p = psutil.Process(pid)
    time.sleep(WARMUP_S)
    c0, t0 = p.cpu_times(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = p.cpu_times(), time.monotonic()
    used = (c1.user - c0.user) + (c1.system - c0.system)
    return 100.0 * used / (t1 - t0)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def run_baseline(cadence_ms: float, spool: Path) -> None:
    """Child mode: the sampling loop with no sampler, until SIGTERM."""
    from spark_harness.telemetry.sidecar import Sidecar, Spool

    sp = Spool(spool)
    try:
        asyncio.run(Sidecar([], sp, Clock.start(), cadence_ms, header={}).run())
    finally:
        sp.close()


def measure(cadence_ms: float, seconds: float, work: Path, url: str) -> dict[str, float]:
    base = subprocess.Popen(
        [sys.executable, __file__, "--baseline-child", str(cadence_ms),
         "--spool", str(work / f"base-{cadence_ms}.jsonl")]
    )  # fmt: skip
    try:
        baseline = cpu_of(base.pid, seconds)
    finally:
        stop(base)
    endpoint = work / f"endpoint-{cadence_ms}.json"
    contract.Endpoint(
        stack="bench", kind="external", base_url="http://127.0.0.1:9", model="m",
        pid=os.getpid(), pids=[os.getpid()], g3_dir=str(work),
        metrics=[contract.MetricsSource(url=url, source="vllm")],
    ).write(endpoint)  # fmt: skip
    spool = work / f"sidecar-{cadence_ms}.jsonl"
    side = subprocess.Popen(
        [sys.executable, "-m", "spark_harness.telemetry", "sidecar",
         "--endpoint-file", str(endpoint), "--service-file", str(work / f"svc-{cadence_ms}.json"),
         "--spool", str(spool), "--cadence-ms", str(cadence_ms)],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        full = cpu_of(side.pid, seconds)
    finally:
        stop(side)
    rows = [json.loads(line) for line in spool.read_text().splitlines()]
    samples = [r for r in rows if r["kind"] == "sample"]
    meta = [r for r in rows if r["kind"] == "meta"][-1]
    gaps = [(b["t_ns"] - a["t_ns"]) / 1e6 for a, b in itertools.pairwise(samples)]
    return {
        "cadence_ms": cadence_ms,
        "baseline_cpu_pct": baseline,
        "sidecar_cpu_pct": full,
        "ratio": full / baseline if baseline > 0 else float("inf"),
        "sidecar_meta_cpu_pct": meta["cpu_pct"],
        "fields_per_sample": max(len(s) for s in samples) - 2,
        "achieved_cadence_ms": sum(gaps) / len(gaps),
        "max_gap_ms": max(gaps),
        "sampler_errors": len(meta["errors"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="steady window per run")
    ap.add_argument("--baseline-child", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--spool", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--serve-child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_child:
        run_baseline(args.baseline_child, args.spool)
        return
    if args.serve_child:
        serve_exposition(args.serve_child)
        return
    with tempfile.TemporaryDirectory(prefix="bench-sidecar-") as tmp:
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, __file__, "--serve-child", str(port_file)])
        try:
            contract.wait_for_file(port_file, 20)
            url = f"http://127.0.0.1:{port_file.read_text()}/metrics"
            with urllib.request.urlopen(url, timeout=5) as resp:
                size = len(resp.read())
            print(f"load average {os.getloadavg()[0]:.2f}; exposition {size / 1024:.1f} KiB")
            results = [measure(c, args.seconds, Path(tmp), url) for c in (200.0, 50.0)]
        finally:
            stop(server)
    print("| cadence | baseline loop CPU | sidecar CPU | ratio | sidecar's own meta | "
          "fields/sample | achieved cadence | max gap |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['cadence_ms']:.0f} ms | {r['baseline_cpu_pct']:.2f} % | "
            f"{r['sidecar_cpu_pct']:.2f} % | {r['ratio']:.1f}x | "
            f"{r['sidecar_meta_cpu_pct']:.2f} % | {r['fields_per_sample']} | "
            f"{r['achieved_cadence_ms']:.1f} ms | {r['max_gap_ms']:.1f} ms |"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
