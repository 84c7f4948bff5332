"""Load generator capacity on one core against a zero-delay server.

    .venv/bin/python benchmarks/bench_loadgen_capacity.py [--seconds 5] [--users 16]

The client is pinned to one CPU, the ground-truth server (no injected delay) to another.
For 1 and 64 output tokens it runs the load generator (``run_standalone``: stamps,
records, summaries-ready fields) and, as the baseline in the same process, a bare aiohttp
client that sends the same requests and only reads the stream line by line. Figures:
requests/s and streamed content events/s, client CPU per request and per event, and the
load generator's cost relative to the bare client (ratios). When the client's CPU use is
below 100 % the server was the limit, so "per CPU-second" figures are the capacity of one
client core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from spark_harness.loadgen import run_standalone
from spark_harness.workloads import build_workload
from spark_harness_testkit.groundtruth import TruthConfig, TruthServer, pin_apart

#: role chunk, usage chunk and [DONE] around the content events of the truth server
NON_CONTENT_EVENTS = 3


def measure(fn: Callable[[], tuple[int, int]]) -> dict[str, float]:
    c0, t0 = time.process_time(), time.monotonic()
    requests, events = fn()
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    return {
        "req_s": requests / wall,
        "events_s": events / wall,
        "cpu_util": cpu / wall,
        "cpu_ms_per_req": 1e3 * cpu / requests,
        "req_per_cpu_s": requests / cpu,
        "events_per_cpu_s": events / cpu,
    }


def spec(users: int, tokens: int, seconds: float) -> dict[str, Any]:
    return {
        "workload": {"kind": "fixed_context", "context_tokens": 64, "output_tokens": tokens},
        "load": {"kind": "closed", "users": users},
        "phases": {"warmup_s": 0.0, "load_s": seconds, "cooldown_s": 0.0},
        "seed": 1,
    }


def ours(url: str, point: dict[str, Any]) -> tuple[int, int]:
    records, _ = run_standalone(url, point, model="truth", kind="sim")
    return len(records), sum(len(r["event_offsets_ms"] or []) for r in records)


def bare(url: str, point: dict[str, Any]) -> tuple[int, int]:
    """The same requests through a bare aiohttp client that only reads the lines."""
    wl, _ = build_workload(point, server_is_sim=True)
    users, seconds = point["load"]["users"], point["phases"]["load_s"]
    bodies = [
        json.dumps(
            {
                "model": "truth",
                "prompt": wl.next("load", u).request.prompt,
                "max_tokens": point["workload"]["output_tokens"],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        for u in range(users)
    ]
    counts = [0, 0]

    async def run() -> None:
        connector = aiohttp.TCPConnector(limit=users)
        async with aiohttp.ClientSession(connector=connector, read_bufsize=4 << 20) as s:
            deadline = time.monotonic() + seconds

            async def user(body: bytes) -> None:
                while time.monotonic() < deadline:
                    async with s.post(
                        url + "/v1/completions",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    ) as resp:
                        async for line in resp.content:
                            if line.startswith(b"data:"):
                                counts[1] += 1
                    counts[1] -= NON_CONTENT_EVENTS
                    counts[0] += 1

            await asyncio.gather(*(user(b) for b in bodies))

    asyncio.run(run())
    return counts[0], counts[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--users", type=int, default=16)
    args = ap.parse_args()
    server_cpu = pin_apart()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; users {args.users}")
    print(
        "| output tokens | client | req/s | content events/s | client CPU | CPU ms/req "
        "| req per CPU-s | events per CPU-s |"
    )
    print("|" + "---|" * 8)
    with TruthServer(TruthConfig(ttft_ms=0, itl_ms=0), cpu=server_cpu) as srv:
        for tokens in (1, 64):
            point = spec(args.users, tokens, args.seconds)
            res = {
                "bare aiohttp": measure(lambda p=point: bare(srv.base_url, p)),
                "loadgen": measure(lambda p=point: ours(srv.base_url, p)),
            }
            for name, m in res.items():
                print(
                    f"| {tokens} | {name} | {m['req_s']:.0f} | {m['events_s']:.0f} "
                    f"| {m['cpu_util']:.0%} | {m['cpu_ms_per_req']:.3f} "
                    f"| {m['req_per_cpu_s']:.0f} | {m['events_per_cpu_s']:.0f} |"
                )
            a, b = res["loadgen"], res["bare aiohttp"]
            print(
                f"| {tokens} | ratio loadgen/bare | {a['req_s'] / b['req_s']:.2f} "
                f"| {a['events_s'] / b['events_s']:.2f} | | "
                f"{a['cpu_ms_per_req'] / b['cpu_ms_per_req']:.2f} | | |"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
