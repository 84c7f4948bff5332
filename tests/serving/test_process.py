"""A command stack is killed as a whole: a descendant that calls ``setsid`` (and
leaves its process group) dies on SIGTERM of ``serve`` and when ``serve`` itself is
SIGKILLed (docs/SECURITY.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from spark_harness.contract import wait_for_file
from spark_harness.serving.process import TAG_ENV, kill_stack, pid_alive, stack_pids

#: forks a grandchild that leaves the group (setsid), ignores SIGTERM and sleeps
ESCAPER = """
import os, signal, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # double fork: re-parented away from the stack process
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(600)
    os._exit(0)
time.sleep(600)
"""


def start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    spec = {
        "name": "esc",
        "kind": "command",
        "model": "m",
        "command": {
            "processes": [
                {"name": "p", "argv": [sys.executable, "-c", ESCAPER, str(tmp_path / "gc.pid")]}
            ],
            "health": None,
            "stop_grace_s": 1,
        },
    }
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(spec))
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "spark_harness", "serve", "--stack", tmp_path / "stack.yaml"),
            *("--endpoint-file", tmp_path / "ep.json", "--workdir", tmp_path / "w"),
        ]
    )
    wait_for_file(tmp_path / "ep.json", 20)
    wait_for_file(tmp_path / "gc.pid", 20)
    grandchild = int((tmp_path / "gc.pid").read_text())
    assert pid_alive(grandchild)
    return proc, grandchild


def gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_setsid_descendant_dies_with_the_stack(tmp_path: Path, sig: int) -> None:
    proc, grandchild = start(tmp_path)
    try:
        proc.send_signal(sig)
        proc.wait(timeout=20)
        assert gone(grandchild, 10), f"pid {grandchild} outlived serve ({signal.Signals(sig).name})"
    finally:
        if pid_alive(grandchild):
            subprocess.run(["kill", "-9", str(grandchild)], check=False)


def test_without_a_cgroup_the_tag_sweep_finds_a_setsid_descendant(tmp_path: Path) -> None:
    """The fallback where cgroup v2 is not writable (not root): the inherited tag."""
    tag = "test-" + str(time.monotonic_ns())
    env = {**os.environ, TAG_ENV: tag}
    child = subprocess.Popen([sys.executable, "-c", ESCAPER, str(tmp_path / "gc.pid")], env=env)
    try:
        wait_for_file(tmp_path / "gc.pid", 20)
        grandchild = int((tmp_path / "gc.pid").read_text())
        assert stack_pids(tag) == {child.pid, grandchild}
        kill_stack(tag, None)
        child.wait(timeout=10)
        assert gone(grandchild, 10)
    finally:
        child.kill()
        pid_file = tmp_path / "gc.pid"
        if pid_file.exists() and pid_alive(pid := int(pid_file.read_text())):
            os.kill(pid, signal.SIGKILL)
