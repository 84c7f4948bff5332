"""Benchmark: property-based fuzzing of the simulator API (issue 16).

    python benchmarks/bench_fuzz_sim.py                 # 10,000 generated cases
    python benchmarks/bench_fuzz_sim.py --cases 500     # a quick look

Hypothesis generates raw requests (bodies, headers, JSON nesting, numbers, encodings)
and client behaviours (whole, slow, abandoned, withheld body:
``spark_harness_testkit.httpfuzz``) and plays each over a raw socket against the real
server (``sim.server.serve`` with its timeouts). Goal: 0 responses >= 500, 0 hangs (no
answer and no close within 5 s), the process's descriptors back to their baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from spark_harness_testkit.httpfuzz import Case, SimThread, cases, exchange, open_fds

SIM = {"mode": "tiered", "g1_blocks": 256, "g2_blocks": 32, "block_tokens": 16}
SIM |= {"max_num_seqs": 16, "body_timeout_s": 0.5, "idle_timeout_s": 2.0}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10_000)
    args = p.parse_args()
    statuses: collections.Counter[str] = collections.Counter()
    bad: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, SimThread(SIM, Path(tmp)) as sim:
        asyncio.run(exchange(sim.host, sim.port, Case("GET", "/health", [], b"")))
        fds_before = open_fds()
        t0 = time.monotonic()

        @settings(
            max_examples=args.cases,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases(model="m"))
        def fuzz(case: Case) -> None:
            out = asyncio.run(exchange(sim.host, sim.port, case, limit_s=5))
            statuses["hang" if out.hung else str(out.status)] += 1
            if out.hung or (out.status or 0) >= 500:
                bad.append(repr(case)[:300])

        fuzz()
        wall = time.monotonic() - t0
        deadline = time.monotonic() + 10
        while open_fds() > fds_before and time.monotonic() < deadline:
            time.sleep(0.1)
        fds_after = open_fds()
    n = sum(statuses.values())
    five = sum(v for k, v in statuses.items() if k.isdigit() and int(k) >= 500)
    report = {
        "cases": n,
        "wall_s": round(wall, 1),
        "statuses": dict(sorted(statuses.items())),
        "responses_5xx": five,
        "hangs": statuses["hang"],
        "fds_before": fds_before,
        "fds_after": fds_after,
        "examples_of_failures": bad[:5],
    }
    print(json.dumps(report, indent=2))
    ok = not five and not statuses["hang"] and fds_after <= fds_before
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
