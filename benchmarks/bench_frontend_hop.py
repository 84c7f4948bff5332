"""What Dynamo's frontend adds to one request's TTFT, and why: kept-alive vs new connections.

Brings up the CPU engine's two stacks one after the other with `spark-harness serve`
(Stack A: vLLM's own server, config/stacks/vllm-cpu.yaml; Stack B: the same vLLM behind
Dynamo's frontend, config/stacks/dynamo-vllm-cpu.yaml) and sends one request at a time
(a per-request nonce, 8 tokens with ``ignore_eos``), alternating two clients:

- ``kept-alive``: one connection for every request, as the load generator and the usual
  HTTP clients (httpx, aiohttp, the OpenAI SDK) hold them;
- ``new``: a new connection per request.

Per stack and client: TTFT p50/p90 (request written -> first SSE event read), TPOT p50,
and the share of responses whose first read held more than one token event. On Dynamo
1.6.1 the frontend's HTTP sockets keep Nagle's algorithm on (no ``TCP_NODELAY``; its
request-plane sockets set it): on a kept-alive connection, once the kernel's quick-ACK
start is over, the token events after the response head wait for the client's delayed
ACK (~40 ms), and arrive together. A new connection is still in quick-ACK mode.

    python benchmarks/bench_frontend_hop.py [--requests N] [--rounds R]

Needs the engines' environment (tools/install_vllm_cpu.sh); the client runs on the last
CPU, the stacks on their `cpus` (core 0).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _serve import down, up

from spark_harness.contract import Endpoint

STACKS = {"A": "config/stacks/vllm-cpu.yaml", "B": "config/stacks/dynamo-vllm-cpu.yaml"}
PROMPT = " ".join(["the cat sat on the mat"] * 20)  # corpus words: one token each
#: client -> pause after each response: none (a closed-loop user), or longer than the
#: kernel's delayed-ACK timeout (40 ms at least), which ends its ping-pong mode
CLIENTS = {"kept-alive": 0.0, "kept-alive, 250 ms apart": 0.25, "new": 0.0}


def up_stack(stack: str, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """One stack up; its process and base URL once ready."""
    proc, ep_file = up(["--stack", STACKS[stack]], work, stack)
    return proc, Endpoint.read(ep_file).base_url


def one(conn: http.client.HTTPConnection, i: int) -> tuple[float, float, bool]:
    """TTFT ms, TPOT ms and whether the first read held several token events."""
    body = json.dumps({"model": "tiny", "prompt": f"n{i}q {PROMPT}", "max_tokens": 8,
                       "stream": True, "ignore_eos": True})  # fmt: skip
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body, {"content-type": "application/json"})
    resp = conn.getresponse()
    stamps = []
    while line := resp.readline():
        if line.startswith(b"data: ") and b"[DONE]" not in line:
            stamps.append(time.perf_counter() - t0)
    ms = [s * 1000 for s in stamps]
    tpot = (ms[-1] - ms[0]) / (len(ms) - 1)
    return ms[0], tpot, ms[1] - ms[0] < 0.05


def measure(url: str, requests: int, rounds: int) -> dict[str, list[tuple[float, float, bool]]]:
    """Per client, ``rounds`` blocks of ``requests`` back to back (the next request sent as
    the last one ends, as a closed-loop user does), the clients' blocks alternating."""
    host = url.split("//")[1]
    out: dict[str, list[tuple[float, float, bool]]] = {c: [] for c in CLIENTS}
    n = 0
    for _ in range(rounds):
        for client, gap_s in CLIENTS.items():
            kept = http.client.HTTPConnection(host, timeout=30)
            for i in range(requests + 3):  # the first three of a block are not counted
                conn = (
                    kept
                    if client.startswith("kept-alive")
                    else http.client.HTTPConnection(host, timeout=30)
                )
                r = one(conn, n := n + 1)
                if conn is not kept:
                    conn.close()
                if i >= 3:
                    out[client].append(r)
                time.sleep(gap_s)
            kept.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=40, help="per client and round")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    cols = ["stack", "client", "requests", "TTFT p50 ms", "TTFT p90 ms", "TPOT p50 ms",
            "first read held several tokens"]  # fmt: skip
    print("| " + " | ".join(cols) + " |\n" + "|---" * len(cols) + "|")
    with tempfile.TemporaryDirectory(prefix="bench_hop_") as tmp:
        for stack in STACKS:
            proc, url = up_stack(stack, Path(tmp))
            try:
                one(http.client.HTTPConnection(url.split("//")[1], timeout=60), 0)  # warm
                res = measure(url, args.requests, args.rounds)
            finally:
                down(proc)
            for client, rs in res.items():
                ttft = sorted(r[0] for r in rs)
                p90 = ttft[int(0.9 * (len(ttft) - 1))]
                tpot = statistics.median(r[1] for r in rs)
                held = sum(r[2] for r in rs) / len(rs)
                print(f"| {stack} | {client} | {len(rs)} | {statistics.median(ttft):.1f} | "
                      f"{p90:.1f} | {tpot:.2f} | {held:.0%} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
