"""CPU cost of the telemetry sidecar at 200 ms and 50 ms cadence.

    python benchmarks/bench_sidecar.py [--seconds 15]

Per cadence, one after another in this session, each in its own process:

- **baseline**: the sidecar's loop with no sampler (ticks, timestamps, empty sample
  lines to the spool): the floor any sampling loop pays;
- **sidecar** as the workflow starts it (``python -m spark_harness.telemetry sidecar``)
  against a server stand-in, with the server's metrics endpoint serving
  - ``none``: no metrics endpoint (system, disk, server I/O only);
  - ``sim``: an exposition with the families the embedded simulator (tiered) exposes;
  - ``vllm-2x``: a vLLM-sized one: two engines, every vLLM/KVBM family the mapping
    knows, five 18-bucket histograms.

CPU is the process's user+system time over a steady window (start-up excluded), as % of
one core; ``ratio`` is sidecar / baseline at the same cadence. Goal: under 2 % of one
core at 200 ms. "late / skipped reads": metrics answers that missed their sample's
deadline (kept as rows of their own), and ticks at which the previous read was still
running (no read started).
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
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from spark_harness import contract
from spark_harness.clock import Clock

WARMUP_S = 2.0
CADENCES_MS = (200.0, 50.0)

#: exposition shape -> (label values per series, gauges, counters, histograms (buckets))
SHAPES: dict[str, tuple[list[str], list[str], list[str], dict[str, int]]] = {
    "sim": (
        ["0"],
        ["vllm:kv_cache_usage_perc", "vllm:num_requests_running", "vllm:num_requests_waiting",
         "kvbm_host_cache_hit_rate", "kvbm_disk_cache_hit_rate", "sim_kv_g2_usage_perc",
         "sim_kv_g3_usage_perc", "sim_kv_g3_direct_io"],
        ["vllm:prefix_cache_queries", "vllm:prefix_cache_hits", "vllm:num_preemptions",
         "vllm:prompt_tokens", "vllm:generation_tokens", "kvbm_offload_blocks_d2h",
         "kvbm_offload_blocks_h2d", "kvbm_offload_blocks_d2d", "kvbm_onboard_blocks_h2d",
         "kvbm_onboard_blocks_d2d", "kvbm_matched_tokens", "sim_kv_dropped_blocks",
         "sim_kv_filtered_blocks", "sim_kv_g3_read_bytes", "sim_kv_g3_write_bytes",
         "sim_kv_g3_io_errors", "sim_engine_steps", "sim_engine_step_modeled_seconds",
         "sim_engine_step_actual_seconds", "sim_requests_rejected"],
        {"vllm:time_to_first_token_seconds": 19, "sim_engine_step_lag_seconds": 13,
         "sim_kv_g2_fetch_seconds": 13, "sim_kv_g3_fetch_seconds": 13},
    ),
    "vllm-2x": (
        ["0", "1"],
        ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
         "kvbm_host_cache_hit_rate", "kvbm_disk_cache_hit_rate"],
        ["vllm:prefix_cache_queries", "vllm:prefix_cache_hits", "vllm:num_preemptions",
         "vllm:prompt_tokens", "vllm:generation_tokens", "vllm:request_success",
         "kvbm_offload_blocks_d2h", "kvbm_offload_blocks_h2d", "kvbm_onboard_blocks_h2d",
         "kvbm_onboard_blocks_d2d", "kvbm_matched_tokens"],
        {"vllm:time_to_first_token_seconds": 18, "vllm:inter_token_latency_seconds": 18,
         "vllm:e2e_request_latency_seconds": 18, "vllm:request_queue_time_seconds": 18,
         "sim_kv_g3_fetch_seconds": 18},
    ),
}  # fmt: skip


def exposition(shape: str) -> bytes:
    """A Prometheus exposition of the given shape, written by prometheus-client."""
    engines, gauges, counters, hists = SHAPES[shape]
    reg = CollectorRegistry()
    labels = ["engine", "model_name"]
    for name in gauges:
        g = Gauge(name, name, labels, registry=reg)
        for e in engines:
            g.labels(e, "llama").set(0.5)
    for name in counters:
        c = Counter(name, name, labels, registry=reg)
        for e in engines:
            c.labels(e, "llama").inc(1000)
    for name, n in hists.items():
        h = Histogram(name, name, labels, buckets=[0.001 * 2**i for i in range(n)], registry=reg)
        for e in engines:
            for v in (0.003, 0.02, 0.2):
                h.labels(e, "llama").observe(v)
    return generate_latest(reg)


def serve(shape: str, port_file: Path) -> None:
    """Child mode: serve the exposition with aiohttp (keep-alive, like the simulator)."""
    body = exposition(shape)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port_file.write_text(str(runner.addresses[0][1]))
        await asyncio.Event().wait()

    asyncio.run(run())


def baseline(cadence_ms: float, spool: Path) -> None:
    """Child mode: the sampling loop with no sampler, until SIGTERM."""
    from spark_harness.telemetry.sidecar import Sidecar, Spool

    sp = Spool(spool)
    try:
        asyncio.run(Sidecar([], sp, Clock.start(), cadence_ms, header={}).run())
    finally:
        sp.close()


def cpu_pct(pid: int, seconds: float) -> float:
    """% of one core used by ``pid`` over ``seconds``, after a warm-up."""
    p = psutil.Process(pid)
    time.sleep(WARMUP_S)
    c0, t0 = p.cpu_times(), time.monotonic()
    time.sleep(seconds)
    c1, t1 = p.cpu_times(), time.monotonic()
    return 100.0 * ((c1.user - c0.user) + (c1.system - c0.system)) / (t1 - t0)


def measured(argv: list[str], seconds: float) -> float:
    proc = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        return cpu_pct(proc.pid, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def run_sidecar(cadence_ms: float, seconds: float, work: Path, url: str | None) -> dict[str, Any]:
    tag = f"{cadence_ms:.0f}-{len(list(work.iterdir()))}"
    endpoint, spool = work / f"endpoint-{tag}.json", work / f"spool-{tag}.jsonl"
    contract.Endpoint(
        stack="bench", kind="external", base_url="http://127.0.0.1:9", model="m",
        pid=os.getpid(), pids=[os.getpid()], g3_dir=str(work),
        metrics=[contract.MetricsSource(url=url, source="vllm")] if url else [],
    ).write(endpoint)  # fmt: skip
    cpu = measured(
        [sys.executable, "-m", "spark_harness.telemetry", "sidecar", "--endpoint-file",
         str(endpoint), "--service-file", str(work / f"svc-{tag}.json"), "--spool", str(spool),
         "--cadence-ms", str(cadence_ms)],
        seconds,
    )  # fmt: skip
    rows = [json.loads(line) for line in spool.read_text().splitlines()]
    samples = [r for r in rows if r["kind"] == "sample"]
    meta = [r for r in rows if r["kind"] == "meta"][-1]
    gaps = [(b["t_ns"] - a["t_ns"]) / 1e6 for a, b in itertools.pairwise(samples)]
    return {
        "cpu_pct": cpu,
        "meta_cpu_pct": meta["cpu_pct"],
        "fields": max(len(s) for s in samples) - 2,
        "cadence_ms": sum(gaps) / len(gaps),
        "max_gap_ms": max(gaps),
        "errors": sum(e["count"] for e in meta["errors"].values()),
        "late": sum(meta["late_results"].values()),
        "samples": len(samples),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="steady window per run")
    ap.add_argument("--baseline-child", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--serve-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--spool", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_child:
        return baseline(args.baseline_child, args.spool)
    if args.serve_child:
        return serve(args.serve_child[0], Path(args.serve_child[1]))
    print(f"load average at start {os.getloadavg()[0]:.2f}")
    print(
        "| cadence | endpoint | exposition | baseline loop | sidecar | ratio | sidecar's own "
        "meta | fields | achieved cadence | max gap | late / skipped reads |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-sidecar-") as tmp:
        work = Path(tmp)
        servers, urls = [], {}
        for shape in SHAPES:
            port_file = work / f"port-{shape}"
            servers.append(
                subprocess.Popen([sys.executable, __file__, "--serve-child", shape, str(port_file)])
            )
            contract.wait_for_file(port_file, 20)
            urls[shape] = f"http://127.0.0.1:{port_file.read_text()}/metrics"
        try:
            for cadence in CADENCES_MS:
                base = measured(
                    [sys.executable, __file__, "--baseline-child", str(cadence),
                     "--spool", str(work / f"base-{cadence:.0f}.jsonl")],
                    args.seconds,
                )  # fmt: skip
                for shape in ("none", *SHAPES):
                    url = urls.get(shape)
                    size = f"{len(exposition(shape)) / 1024:.1f} KiB" if url else "-"
                    r = run_sidecar(cadence, args.seconds, work, url)
                    print(
                        f"| {cadence:.0f} ms | {shape} | {size} | {base:.2f} % | "
                        f"{r['cpu_pct']:.2f} % | {r['cpu_pct'] / base:.1f}x | "
                        f"{r['meta_cpu_pct']:.2f} % | {r['fields']} | {r['cadence_ms']:.1f} ms | "
                        f"{r['max_gap_ms']:.1f} ms | {r['late']} / {r['errors']} of "
                        f"{r['samples']} |",
                        flush=True,
                    )
        finally:
            for s in servers:
                s.send_signal(signal.SIGTERM)
                s.wait(10)
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return None


if __name__ == "__main__":
    main()
