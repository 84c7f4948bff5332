"""How many concurrent streams one core of simulator sustains, and what a step costs.

    python benchmarks/bench_sim.py                      # 1, 250, 500, ... streams
    python benchmarks/bench_sim.py --streams 1000 4000 --window 6

The simulator (``tiny`` profile on ``tiny-box``) runs in its own process pinned to one
core; this process, pinned to another core, opens N streaming completions with a raw
asyncio client that only counts bytes (so the client is not the bottleneck) and keeps
them all decoding. Over a measurement window it reads the engine's own counters from
``/metrics`` and the server's CPU time from ``/proc``:

- ``actual/modeled``: measured step time over modeled step time. The simulator is
  faithful while this stays within 5 % of 1 (it delivers every step's tokens when the
  model says); "sustained" means it does at N streams.
- ``cpu/step``: server CPU per engine step (scheduling, token delivery, SSE writes),
  and per stream-step; the 1-stream run in the same session is the baseline.
- ``cpu %``: share of the server's core in use.
- ``need``: server CPU per step over the modeled step time: the share of one core the
  simulator needs to keep up at N streams. Below 1 it keeps up on a core of its own;
  ``actual/modeled`` above 1.05 with ``need`` well below 1 means other processes took
  the core (the machine was not quiet: rerun).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def max_tokens(streams: int) -> int:
    """Enough tokens to keep every stream decoding through set-up and the window."""
    return 4000 if streams < 100 else 1000


def stack(streams: int) -> dict:
    blocks = -(-(max_tokens(streams) + 8) // 16)
    return {
        "name": "bench",
        "kind": "sim",
        "model": "m",
        "sim": {
            "model_profile": "tiny",
            "hardware_profile": "tiny-box",
            "mode": "uma",
            "max_num_seqs": streams,
            # the server's guard against connection floods (512 by default) would
            # answer the streams beyond it with 429: here every stream is wanted
            "max_concurrent_requests": max(streams, 1),
            "max_num_batched_tokens": 65536,
            "block_tokens": 16,
            "g1_blocks": blocks * streams,
        },
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def http(host: str, port: int, method: str, path: str, body: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        "Content-Type: application/json\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    data = await reader.read()
    writer.close()
    return data.split(b"\r\n\r\n", 1)[1]


async def metrics(host: str, port: int) -> dict[str, float]:
    text = (await http(host, port, "GET", "/metrics")).decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


async def stream(
    host: str, port: int, i: int, max_tokens: int, first: asyncio.Event, started: list[int], n: int
) -> int:
    """One streaming request; counts bytes received, signals its first token."""
    body = json.dumps(
        {
            "model": "m",
            "prompt": f"s{i} a b c",
            "max_tokens": max_tokens,
            "stream": True,
            "ignore_eos": True,
        }
    ).encode()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        (
            f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        + body
    )
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream {i}: {status.decode().strip()}: {await reader.read()}")
    got = 0
    seen_first = False
    while chunk := await reader.read(1 << 16):
        got += len(chunk)
        if not seen_first and b"data: {" in chunk:
            seen_first = True
            started[0] += 1
            if started[0] == n:
                first.set()
    writer.close()
    return got


async def measure(host: str, port: int, pid: int, n: int, window: float) -> dict[str, float]:
    first = asyncio.Event()
    started = [0]
    # long enough to keep every stream decoding through set-up and the window
    tasks = [
        asyncio.create_task(stream(host, port, i, max_tokens(n), first, started, n))
        for i in range(n)
    ]
    waiter = asyncio.create_task(first.wait())
    await asyncio.wait([waiter, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if not first.is_set():
        for t in tasks:
            if t.done() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        raise TimeoutError(f"only {started[0]} of {n} streams started")
    await asyncio.sleep(0.5)  # settle: every sequence is decoding
    m0, c0, t0 = await metrics(host, port), cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(window)
    m1, c1, t1 = await metrics(host, port), cpu_seconds(pid), time.monotonic()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    steps = m1["sim_engine_steps_total"] - m0["sim_engine_steps_total"]
    modeled = (
        m1["sim_engine_step_modeled_seconds_total"] - m0["sim_engine_step_modeled_seconds_total"]
    )
    actual = m1["sim_engine_step_actual_seconds_total"] - m0["sim_engine_step_actual_seconds_total"]
    cpu = c1 - c0
    return {
        "streams": n,
        "steps": steps,
        "modeled_step_ms": modeled / steps * 1e3,
        "actual_over_modeled": actual / modeled,
        "cpu_per_step_ms": cpu / steps * 1e3,
        "cpu_per_stream_step_us": cpu / steps / n * 1e6,
        "cpu_pct": cpu / (t1 - t0) * 100,
        "need": cpu / modeled,
        "tokens_per_s": (m1["vllm:generation_tokens_total"] - m0["vllm:generation_tokens_total"])
        / (t1 - t0),
    }


def run(n: int, window: float, server_cpu: int, client_cpu: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as wd:
        path = Path(wd) / "stack.yaml"
        path.write_text(yaml.safe_dump(stack(n)))
        proc = subprocess.Popen(
            [sys.executable, "-m", "spark_harness.sim", "--stack", str(path), "--workdir", wd],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {server_cpu}),
        )
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            os.sched_setaffinity(0, {client_cpu})
            for _ in range(200):  # wait for the listener
                try:
                    asyncio.run(http(info["host"], info["port"], "GET", "/health"))
                    break
                except OSError:
                    time.sleep(0.05)
            return asyncio.run(measure(info["host"], info["port"], proc.pid, n, window))
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 250, 500, 1000, 2000, 4000])
    parser.add_argument("--window", type=float, default=5.0, help="seconds measured per point")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for n in args.streams:
        row = run(n, args.window, args.server_cpu, args.client_cpu)
        rows.append(row)
        print(
            f"streams={n:5d} step={row['modeled_step_ms']:7.2f} ms modeled  "
            f"actual/modeled={row['actual_over_modeled']:.3f}  "
            f"cpu/step={row['cpu_per_step_ms']:6.2f} ms  "
            f"cpu/stream-step={row['cpu_per_stream_step_us']:6.1f} us  "
            f"cpu={row['cpu_pct']:5.1f} %  need={row['need']:.2f}  "
            f"tokens/s={row['tokens_per_s']:8.0f}",
            flush=True,
        )
    ok = [r["streams"] for r in rows if abs(r["actual_over_modeled"] - 1) <= 0.05]
    print(f"most streams within 5 % of modeled step times: {max(ok) if ok else 0}")
    fits = [r["streams"] for r in rows if r["need"] < 0.95]
    print(f"most streams needing under 95 % of one core: {max(fits) if fits else 0}")
    base = next((r for r in rows if r["streams"] == 1), None)
    if base is not None:  # the same session's 1-stream run is the baseline
        for r in rows:
            if r["streams"] > 1:
                marginal = (r["cpu_per_step_ms"] - base["cpu_per_step_ms"]) / (r["streams"] - 1)
                times = r["cpu_per_step_ms"] / base["cpu_per_step_ms"]
                print(
                    f"streams={r['streams']:5d}: cpu/step = {times:6.1f} x the 1-stream "
                    f"baseline; marginal {marginal * 1e3:5.1f} us per stream-step"
                )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
