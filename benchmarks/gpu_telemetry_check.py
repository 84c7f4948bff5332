"""Check the sidecar's NVML telemetry on a real GPU (run it once on each new machine).

    python benchmarks/gpu_telemetry_check.py [--seconds 4]

Starts the real telemetry sidecar (no server: an external endpoint that is not there),
records an idle second, then loads the GPU with matrix products (PyTorch, when it is
installed) and prints, per ``gpu*`` field, its idle and loaded values. It fails when a
field NVML offers reads as nothing, or when utilisation does not rise under load; a
query the GPU does not support (GB10 has no separate GPU memory) must appear once as
``unavailable``, never as a made-up number.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spark_harness.clock import Clock
from spark_harness.contract import Endpoint, SidecarInfo, wait_for_file
from spark_harness.telemetry.window import collect, wait_sampling


def gpu_load(seconds: float) -> str:
    """Busy the GPU for ``seconds``; say what ran."""
    try:
        import torch
    except ImportError:
        time.sleep(seconds)
        return "no PyTorch: no load"
    if not torch.cuda.is_available():
        time.sleep(seconds)
        return "PyTorch sees no GPU: no load"
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        a = (a @ a).clamp_(-1, 1)
        n += 1
        if n % 8 == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    return f"{n} bf16 8192^3 matrix products on {torch.cuda.get_device_name()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    args = ap.parse_args()
    clock = Clock.start()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        Endpoint(stack="none", kind="external", base_url="http://127.0.0.1:9", model="none",
                 pid=os.getpid(), startup_timeout_s=1).write(d / "endpoint.json")  # fmt: skip
        sidecar = subprocess.Popen(
            [sys.executable, "-m", "spark_harness.telemetry", "sidecar",
             "--endpoint-file", str(d / "endpoint.json"), "--service-file", str(d / "sidecar.json"),
             "--spool", str(d / "spool.jsonl"), "--cadence-ms", "200"],
        )  # fmt: skip
        try:
            wait_for_file(d / "sidecar.json", 30)
            info = SidecarInfo.read(d / "sidecar.json")
            wait_sampling(info, 30)  # published before it samples
            t0 = clock.now_ns()
            time.sleep(1.0)
            t1 = clock.now_ns()
            what = gpu_load(args.seconds)
            t2 = clock.now_ns()
            rows, meta = collect(info, t0, t2)
        finally:
            sidecar.send_signal(signal.SIGTERM)
            sidecar.wait(timeout=10)
    samples = [r for r in rows if r.get("kind") == "sample"]
    unavailable = [r for r in rows if r.get("kind") == "unavailable"]
    fields = sorted({k for r in samples for k in r if k.startswith("gpu")})
    report: dict[str, object] = {
        "load": what,
        "cadence": meta.get("cadence_ms_achieved"),
        "unavailable": [(u["source"], u["reason"]) for u in unavailable],
    }
    problems = []
    for f in fields:
        idle = [r[f] for r in samples if f in r and r["t_ns"] < t1]
        busy = [r[f] for r in samples if f in r and r["t_ns"] >= t1 + 500_000_000]
        report[f] = {"idle_max": max(idle, default=None), "load_max": max(busy, default=None)}
        if not busy:
            problems.append(f"{f}: no samples under load")
    util = [f for f in fields if f.endswith("_util_pct")]
    if not fields:
        problems.append("no gpu* fields at all")
    elif "no load" not in what and not any((report[f]["load_max"] or 0) > 50 for f in util):  # type: ignore[index]
        problems.append("utilisation did not rise above 50 % under load")
    print(json.dumps(report, indent=2))
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
