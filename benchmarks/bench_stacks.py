"""Per-point cost of bringing a stack up and down: `spark-harness serve` to ready, and
SIGTERM to exit (teardown included), for each kind of stack.

Every point of a plan starts a fresh server, so this time is paid once per point and
repetition. Baseline: the embedded simulator (`sim-uma`). Compared: the same simulator
started through the command path (`kind: command`: a child process in its own group,
logs, readiness by HTTP), and NVIDIA Dynamo's frontend + mocker when ai-dynamo is
installed (`tools/install_dynamo.sh`).

    python benchmarks/bench_stacks.py [--reps 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from spark_harness.contract import Endpoint, wait_for_file
from spark_harness.serving.readiness import wait_ready

REPO = Path(__file__).resolve().parents[1]
SIM = REPO / "config/stacks/sim-uma.yaml"


def sim_via_command(tmp: Path) -> Path:
    """sim-uma started as a `kind: command` process (the command path's own overhead)."""
    spec = {
        "name": "sim-command",
        "kind": "command",
        "model": yaml.safe_load(SIM.read_text())["model"],
        "command": {
            "processes": [
                {
                    "name": "sim",
                    "argv": ["{python}", "-m", "spark_harness", "serve", "--stack", str(SIM),
                             "--port", "{ports.http}", "--endpoint-file", "{workdir}/inner.json",
                             "--workdir", "{workdir}/inner"],
                }
            ],
            "metrics": [{"url": "http://127.0.0.1:{ports.http}/metrics", "source": "sim"}],
        },
    }  # fmt: skip
    path = tmp / "sim-command.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def once(stack: Path, tmp: Path) -> tuple[float, float]:
    """Seconds from `serve` start to ready, and from SIGTERM to the service's exit."""
    ep_file = tmp / "endpoint.json"
    ep_file.unlink(missing_ok=True)
    shutil.rmtree(tmp / "work", ignore_errors=True)  # a fresh scratch dir, as server_up does
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "spark_harness", "serve", "--stack", str(stack),
         "--endpoint-file", str(ep_file), "--workdir", str(tmp / "work"),
         "--log", str(tmp / "server.log")],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_file(ep_file, 60)
        wait_ready(Endpoint.read(ep_file), timeout_s=180, poll_s=0.02)
        ready = time.monotonic() - t0
    finally:
        t1 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return ready, time.monotonic() - t1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        stacks = {"sim-uma (baseline)": SIM, "sim via kind: command": sim_via_command(tmp)}
        if importlib.util.find_spec("dynamo") is not None:
            stacks["dynamo-mocker"] = REPO / "config/stacks/dynamo-mocker.yaml"
        results = {}
        # interleaved, so a change in machine load hits every stack alike
        for _ in range(args.reps):
            for name, stack in stacks.items():
                results.setdefault(name, []).append(once(stack, tmp / name.split()[0]))
    base_up = statistics.median(r[0] for r in results["sim-uma (baseline)"])
    base_down = statistics.median(r[1] for r in results["sim-uma (baseline)"])
    print(f"| stack | up: median s | x sim | down: median s | x sim |  ({args.reps} reps)")
    print("|---|---|---|---|---|")
    for name, rs in results.items():
        up = statistics.median(r[0] for r in rs)
        down = statistics.median(r[1] for r in rs)
        print(f"| {name} | {up:.2f} | {up / base_up:.2f} | {down:.2f} | {down / base_down:.2f} |")


if __name__ == "__main__":
    main()
