"""Open-loop accuracy: achieved rate and schedule lag at 50, 200 and 500 req/s.

    .venv/bin/python benchmarks/bench_loadgen_openloop.py [--load-s 5]

The ground-truth server (short replies) runs in its own process (``--pin``: on its own
CPU, the client on another). For each
rate, a constant and a Poisson schedule run for ``load_s``; the baseline is the schedule
itself: the achieved send rate is reported as a ratio to the number of arrivals the
schedule planned in the window, and the lag (sent - scheduled) as percentiles.
"""

from __future__ import annotations

import os

import numpy as np
import truthbench

from spark_harness.loadgen import run_standalone
from spark_harness.loadgen.schedule import schedule
from spark_harness_testkit.groundtruth import TruthConfig, TruthServer

RATES = (50, 200, 500)
WORKLOAD = {"kind": "fixed_context", "context_tokens": 32, "output_tokens": 4, "nonce": True}


def main() -> None:
    args, server_cpu = truthbench.start(
        __doc__,
        [
            "rate",
            "schedule",
            "planned in window",
            "sent in window",
            "achieved/planned",
            "achieved req/s",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "errors",
        ],
    )
    with TruthServer(TruthConfig(ttft_ms=5, itl_ms=2), cpu=server_cpu) as srv:
        for rate in RATES:
            for kind in ("constant", "poisson"):
                spec = {
                    "workload": WORKLOAD,
                    "load": {"kind": kind, "rate": rate},
                    "phases": {"warmup_s": 0.5, "load_s": args.load_s, "cooldown_s": 0.2},
                    "seed": 1,
                }
                records, windows = run_standalone(srv.base_url, spec, model="truth", kind="sim")
                load = [r for r in records if r["phase"] == "load"]
                lo, hi = windows["load"]
                # the schedule's own arrivals in the window (its offsets from the start)
                start = min(r["scheduled_ns"] for r in records)
                offsets = schedule(kind, rate, 1, (hi - start) / 1e9)
                planned = sum(1 for o in offsets if start + o >= lo)
                lags = [r["schedule_lag_ms"] for r in load]
                errors = sum(not r["ok"] for r in load)
                print(
                    f"| {rate} | {kind} | {planned} | {len(load)} | {len(load) / planned:.4f} "
                    f"| {len(load) / ((hi - lo) / 1e9):.1f} | {float(np.percentile(lags, 50)):.3f} "
                    f"| {float(np.percentile(lags, 99)):.3f} | {max(lags):.3f} | {errors} |"
                )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
