"""Bring one stack up with `spark-harness serve` for a benchmark, and down again.

The benchmarks that talk to a real engine (bench_frontend_hop.py,
bench_engine_executor.py) start their stacks as the workflow does: `serve` writes the
endpoint file once the ports are known, and readiness is the workflow's own check.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from spark_harness.contract import Endpoint
from spark_harness.serving.readiness import ServerNotReady, wait_ready

REPO = Path(__file__).resolve().parents[1]


def up(stack_args: list[str], work: Path, label: str) -> tuple[subprocess.Popen[bytes], Path]:
    """`spark-harness serve <stack_args>` in its own session; its process and endpoint
    file once the server is ready (its log: ``work/<label>.log``)."""
    ep_file = work / f"{label}.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spark_harness", "serve", *stack_args,
         "--endpoint-file", str(ep_file), "--workdir", str(work / label),
         "--log", str(work / f"{label}.log")],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not ep_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            down(proc)
            raise SystemExit(f"stack {label} wrote no endpoint; see {work}/{label}.log")
        time.sleep(0.2)
    try:
        wait_ready(Endpoint.read(ep_file))
    except ServerNotReady as e:
        down(proc)
        raise SystemExit(f"stack {label} not ready: {e}") from e
    return proc, ep_file


def down(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the stack's process group, SIGKILL after a minute."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
