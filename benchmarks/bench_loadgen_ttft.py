"""TTFT and TPOT error of the load generator against ground truth at 1, 16, 64, 256 streams.

    .venv/bin/python benchmarks/bench_loadgen_ttft.py [--load-s 5]

The ground-truth server (spark_harness_testkit.groundtruth) runs in its own process;
with ``--pin`` it and the client are pinned to different CPUs (on a VM this adds the
wake-up latency of a mostly idle vCPU to every event, so the default lets the OS place
them). Truth per request is what the server did,
stamped on the shared monotonic clock (first content write - request received). Figures:
reported vs true p50/p99 and their ratio, and the per-request error distribution.
"""

from __future__ import annotations

import os
import time

import numpy as np
import truthbench

from spark_harness.loadgen import run_standalone
from spark_harness_testkit.groundtruth import TruthConfig, TruthServer, compare

STREAMS = (1, 16, 64, 256)
CFG = TruthConfig(ttft_ms=100, ttft_jitter_ms=100, itl_ms=50)
WORKLOAD = {"kind": "fixed_context", "context_tokens": 64, "output_tokens": 6, "nonce": True}


def main() -> None:
    args, server_cpu = truthbench.start(
        __doc__,
        [
            "streams",
            "requests",
            "true p50",
            "reported p50",
            "ratio",
            "true p99",
            "reported p99",
            "ratio",
            "error p50",
            "error p99",
            "error max",
            "TPOT error p50",
            "client CPU",
        ],
    )
    with TruthServer(CFG, cpu=server_cpu) as srv:
        for users in STREAMS:
            srv.truth(clear=True)
            spec = {
                "workload": WORKLOAD,
                "load": {"kind": "closed", "users": users},
                "phases": {"warmup_s": 1.0, "load_s": args.load_s, "cooldown_s": 0.2},
                "seed": 1,
            }
            c0, t0 = time.process_time(), time.monotonic()
            records, _ = run_standalone(srv.base_url, spec, model="truth", kind="sim")
            cpu = (time.process_time() - c0) / (time.monotonic() - t0)
            pairs = compare([r for r in records if r["phase"] == "load"], srv.truth())
            ttft = [p["ttft_ms"] for p in pairs]
            true = [p["true_ttft_ms"] for p in pairs]
            err = [p["ttft_ms"] - p["true_ttft_ms"] for p in pairs]
            tpot_err = [p["tpot_ms"] - p["true_tpot_ms"] for p in pairs]
            r50, t50 = float(np.percentile(ttft, 50)), float(np.percentile(true, 50))
            r99, t99 = float(np.percentile(ttft, 99)), float(np.percentile(true, 99))
            print(
                f"| {users} | {len(pairs)} | {t50:.2f} | {r50:.2f} | {r50 / t50:.4f} "
                f"| {t99:.2f} | {r99:.2f} | {r99 / t99:.4f} | {float(np.percentile(err, 50)):.3f} "
                f"| {float(np.percentile(err, 99)):.3f} | {max(err):.3f} | {float(np.percentile(tpot_err, 50)):.3f} "
                f"| {cpu:.0%} |"
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f} (times in ms)")


if __name__ == "__main__":
    main()
