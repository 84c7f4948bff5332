"""Shared pieces of the fault-injection suite: small plans, a slow-starting stack, polling."""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import copy_workflow
from tests.workflow.smk import PHASES as SMALL_PHASES
from tests.workflow.smk import SMALL, write_config

#: Short phases: each point takes about two seconds of measuring.
PHASES = {**SMALL_PHASES, "load_s": 1.0}

#: A small simulator stack (no LoRA files) that the slow-start wrapper execs.
SIM_STACK = {
    "name": "sim-small",
    "kind": "sim",
    "model": "sim-llama",
    "startup_timeout_s": 30,
    "sim": {"model_profile": "tiny", "hardware_profile": "tiny-box", "mode": "uma"},
}


def plan(
    phases: dict[str, float] | None = None,
    users: list[int] | None = None,
    stack: str = "B",
    stack_file: str = "config/stacks/sim-tiered.yaml",
) -> dict[str, Any]:
    """The workflow tests' small plan cut down to H0 on one stack, with other phase
    lengths or sweep values."""
    cfg = copy.deepcopy(SMALL)
    cfg["defaults"]["phases"] = {**PHASES, **(phases or {})}
    cfg["stacks"] = {stack: {"file": stack_file}}
    sweep = [{"key": "load.users", "role": "concurrency", "name": "users", "values": users or [2]}]
    cfg["hypotheses"] = {"H0": {"stacks": [stack], "sweep": sweep}}
    return cfg


def make_repo(tmp: Path, config: dict[str, Any]) -> Path:
    root = copy_workflow(tmp)
    write_config(root, config)
    return root


def add_slow_stack(root: Path, delay_s: float, name: str = "slow") -> str:
    """A ``kind: command`` stack whose server sleeps ``delay_s`` before it binds its port.

    It publishes its endpoint file at once (as every service must) and becomes ready only
    after the delay: the start-up of a real engine loading weights.
    """
    sim_file = root / "config/stacks/sim-small.yaml"
    sim_file.write_text(yaml.safe_dump(SIM_STACK))
    code = (
        "import os, sys, time; time.sleep(float(sys.argv[1])); "
        "os.execv(sys.executable, [sys.executable, '-m', 'spark_harness.sim', '--stack', "
        "sys.argv[2], '--port', sys.argv[3], '--workdir', sys.argv[4]])"
    )
    spec = {
        "name": name,
        "kind": "command",
        "model": "sim-llama",
        "startup_timeout_s": delay_s + 30,
        "command": {
            "ports": ["http"],
            "processes": [
                {
                    "name": "engine",
                    "argv": [
                        sys.executable,
                        "-c",
                        code,
                        str(delay_s),
                        str(sim_file),
                        "{ports.http}",
                        "{workdir}",
                    ],
                }
            ],
            "base_url": "http://127.0.0.1:{ports.http}",
            "health": "/health",
        },
    }
    path = f"config/stacks/{name}.yaml"
    (root / path).write_text(yaml.safe_dump(spec))
    return path


def wait_for(what: str, pred: Callable[[], object], timeout: float = 60.0) -> None:
    """Poll ``pred`` every 0.1 s until it is true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def has_text(path: Path, text: str) -> bool:
    try:
        return text in path.read_text()
    except OSError:
        return False


def kill_server_of(endpoint_file: Path) -> int:
    """SIGKILL the server processes named in an endpoint file (a crash); return the pid."""
    ep = json.loads(endpoint_file.read_text())
    victims = ep.get("pids") or [ep["pid"]]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    return int(victims[0])


def attempts(root: Path, point: str, hyp: str = "H0", stack: str = "B") -> list[dict[str, Any]]:
    """run.json of every failed attempt kept for a point, oldest first."""
    base = root / f"results/failed/{hyp}/{stack}/{point}/r0"
    return [json.loads(p.read_text()) for p in sorted(base.glob("attempt-*/run.json"))]
