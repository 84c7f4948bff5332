"""Helper processes die with the process that started them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psutil

from spark_harness.telemetry.procguard import guarded


def test_guarded_command_dies_when_its_parent_is_killed() -> None:
    parent = textwrap.dedent(
        """
        import subprocess, sys, time
        from spark_harness.telemetry.procguard import guarded
        child = subprocess.Popen(guarded(["sleep", "600"]))
        print(child.pid, flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout
        child = psutil.Process(int(proc.stdout.readline()))
        proc.kill()
        proc.wait()
        _, alive = psutil.wait_procs([child], timeout=10)
        assert not alive
    finally:
        if proc.stdout:
            proc.stdout.close()


def test_guarded_command_runs_normally_and_keeps_its_exit_status() -> None:
    out = subprocess.run(guarded(["sh", "-c", "echo hi; exit 3"]), capture_output=True, text=True)
    assert out.stdout == "hi\n" and out.returncode == 3


def test_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "spark_harness.telemetry.procguard", "1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0 and "usage" in out.stderr
