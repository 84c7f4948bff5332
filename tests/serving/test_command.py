"""Command stacks: processes up, endpoint published, clean stop, clear errors, no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from spark_harness.contract import Endpoint, wait_for_file
from spark_harness.serving.process import bind_socket, pid_alive
from spark_harness.serving.readiness import ServerNotReady, wait_ready

FAKE = Path(__file__).with_name("fake_openai.py")


def stack(tmp: Path, **over) -> Path:
    spec = {
        "name": "fake",
        "kind": "command",
        "model": "fake-model",
        "startup_timeout_s": 10,
        "command": {
            "ports": ["http"],
            "processes": [
                {"name": "api", "argv": [sys.executable, str(FAKE), "{ports.http}", "{model}"]},
                {
                    "name": "helper",
                    "argv": [sys.executable, "-c", "import time; time.sleep(600)", "{workdir}"],
                },
            ],
            "health": "/health",
            "metrics": [{"url": "http://127.0.0.1:{ports.http}/metrics", "source": "vllm"}],
            "teardown": f"touch {tmp}/teardown-ran",
            "stop_grace_s": 3,
        },
    }
    spec["command"].update(over)
    path = tmp / "stack.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def serve(tmp: Path, stack_file: Path, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
    ep = tmp / "endpoint.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spark_harness",
            "serve",
            "--stack",
            str(stack_file),
            "--endpoint-file",
            str(ep),
            "--workdir",
            str(tmp / "work"),
            "--log",
            str(tmp / "server.log"),
            *extra,
        ],
        stderr=subprocess.PIPE,
    )
    return proc, ep


def test_processes_come_up_publish_endpoint_and_stop_cleanly(tmp_path):
    proc, ep_file = serve(tmp_path, stack(tmp_path))
    wait_for_file(ep_file, 15)
    ep = Endpoint.read(ep_file)
    assert ep.kind == "command" and len(ep.pids) == 2
    assert ep.kv_tiers is None  # not declared: unknown
    assert ep.metrics[0].url.startswith("http://127.0.0.1:") and ep.metrics[0].source == "vllm"
    assert wait_ready(ep) < 10
    assert set(ep.extra["logs"]) == {"api", "helper"}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert not any(pid_alive(p) for p in ep.pids)
    assert (tmp_path / "teardown-ran").exists()
    assert "fake server on" in Path(ep.extra["logs"]["api"]).read_text()


def test_sigkill_of_the_service_takes_its_processes_down(tmp_path):
    proc, ep_file = serve(tmp_path, stack(tmp_path))
    wait_for_file(ep_file, 15)
    ep = Endpoint.read(ep_file)
    wait_ready(ep)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while any(pid_alive(p) for p in ep.pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in ep.pids)


def test_command_not_found_is_a_clear_error(tmp_path):
    bad = stack(tmp_path, processes=[{"name": "engine", "argv": ["no-such-engine-binary", "--x"]}])
    proc, ep_file = serve(tmp_path, bad)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 127
    assert b"process 'engine': command not found: no-such-engine-binary" in err
    with pytest.raises(ServerNotReady, match="exited before it was ready"):
        wait_ready(Endpoint.read(ep_file), timeout_s=2)


def test_unknown_placeholder_is_a_clear_error_the_consumer_sees_at_once(tmp_path):
    bad = stack(tmp_path, processes=[{"name": "api", "argv": ["x", "{ports.metrics}"]}])
    proc, ep_file = serve(tmp_path, bad)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 2
    assert b"unknown placeholder in '{ports.metrics}'" in err
    t0 = time.monotonic()
    with pytest.raises(ServerNotReady, match="exited before it was ready"):
        wait_ready(Endpoint.read(ep_file))  # the stack's 10 s timeout is not waited out
    assert time.monotonic() - t0 < 5


def test_port_in_use_is_a_clear_error(tmp_path):
    taken = bind_socket("127.0.0.1", 0)
    taken.listen()
    port = taken.getsockname()[1]
    try:
        proc, _ = serve(tmp_path, stack(tmp_path), "--port", str(port))
        _, err = proc.communicate(timeout=15)
    finally:
        taken.close()
    assert proc.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use".encode() in err


def test_model_missing_from_models_list_is_not_ready(tmp_path):
    wrong = stack(tmp_path)
    spec = yaml.safe_load(wrong.read_text())
    spec["command"]["processes"][0]["argv"][3] = "other-model"
    wrong.write_text(yaml.safe_dump(spec))
    proc, ep_file = serve(tmp_path, wrong)
    try:
        wait_for_file(ep_file, 15)
        with pytest.raises(ServerNotReady, match="'fake-model' not listed") as exc:
            wait_ready(Endpoint.read(ep_file), timeout_s=3)
        assert "fake server on" in str(exc.value)  # the log tail
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_slow_health_waits_then_reports_ready(tmp_path):
    slow = stack(tmp_path)
    spec = yaml.safe_load(slow.read_text())
    spec["command"]["processes"][0]["argv"] += ["--health-after", "1.5"]
    slow.write_text(yaml.safe_dump(spec))
    proc, ep_file = serve(tmp_path, slow)
    try:
        wait_for_file(ep_file, 15)
        waited = wait_ready(Endpoint.read(ep_file))
        assert waited >= 1.4
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_external_stack_publishes_and_waits(tmp_path):
    port_sock = bind_socket("127.0.0.1", 0)
    port = port_sock.getsockname()[1]
    port_sock.close()
    server = subprocess.Popen([sys.executable, str(FAKE), str(port), "ext-model"])
    try:
        spec = {
            "name": "ext",
            "kind": "external",
            "model": "ext-model",
            "startup_timeout_s": 10,
            "kv_tiers": ["g1", "g2"],
            "external": {
                "base_url": f"http://127.0.0.1:{port}",
                "metrics": [{"url": f"http://127.0.0.1:{port}/metrics"}],
            },
        }
        f = tmp_path / "ext.yaml"
        f.write_text(yaml.safe_dump(spec))
        proc, ep_file = serve(tmp_path, f)
        wait_for_file(ep_file, 15)
        ep = Endpoint.read(ep_file)
        assert ep.kind == "external" and ep.base_url == f"http://127.0.0.1:{port}"
        assert ep.kv_tiers == ["g1", "g2"]  # declared, for the analysis (H9's B1 check)
        assert wait_ready(ep) < 10
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert server.poll() is None  # not ours to stop
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_plan_prints_resolved_commands_without_running(tmp_path, repo_root):
    f = stack(tmp_path)
    cfg = yaml.safe_load((repo_root / "config/config.yaml").read_text())
    cfg["stacks"] = {"C": {"file": str(f)}}
    cfg["hypotheses"] = {
        "H0": {
            "stacks": ["C"],
            "sweep": [{"key": "load.users", "role": "concurrency", "values": [1, 2]}],
        }
    }
    cfg["track"] = "v3"  # a whole plan, as Snakemake takes it: not layered over config.yaml
    c = tmp_path / "c.yaml"
    c.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [sys.executable, "-m", "spark_harness", "plan", "--configfile", str(c), "--commands"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    reps = cfg["defaults"]["repetitions"]
    assert out.count("# H0/C/users-") == 2 * reps  # 2 points x the plan's repetitions
    assert (
        "[api]" in out
        and "'<port:http>' fake-model" in out
        and f"[teardown] touch {tmp_path}" in out
    )
    assert not (tmp_path / "teardown-ran").exists()
    specs = subprocess.run(
        [sys.executable, "-m", "spark_harness", "plan", "--configfile", str(c), "--specs"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert [json.loads(s)["load"]["users"] for s in specs] == [1] * reps + [2] * reps
    assert os.path.exists(f)


# ------------------------------------------------------------------ shell injection
HOSTILE = ["m; touch {canary}", "$(touch {canary})", "`touch {canary}`", "x' ; touch {canary} '"]


@pytest.mark.parametrize("value", HOSTILE)
def test_placeholders_reach_a_shell_as_one_quoted_word(tmp_path, value):
    """A model name or ``--set`` value with ``;``, ``$(...)`` or quotes runs nothing,
    neither in a process's ``shell`` line nor in the teardown."""
    from spark_harness.serving.command import resolve, run_teardown, teardown_command

    canary = tmp_path / "canary"
    hostile = value.format(canary=canary)
    spec = {
        "name": "s",
        "kind": "command",
        "model": hostile,
        "params": {"extra": hostile},
        "command": {
            "processes": [{"name": "p", "shell": "echo {model} {params.extra} > out.txt"}],
            "teardown": "echo {model} {params.extra} >> out.txt",
        },
    }
    shell = resolve(spec, tmp_path, "127.0.0.1", 0)["processes"][0]["shell"]
    subprocess.run(["/bin/sh", "-c", shell], cwd=tmp_path, check=True)
    run_teardown(teardown_command(spec), tmp_path)
    assert not canary.exists()
    assert (tmp_path / "out.txt").read_text() == f"{hostile} {hostile}\n" * 2
