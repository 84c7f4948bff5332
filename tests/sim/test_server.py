"""run_server in its own process: serves, stops on SIGTERM/SIGINT, leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml


def stack_file(tmp_path: Path, adapters: bool) -> Path:
    sim = {
        "mode": "tiered",
        "g1_blocks": 32,
        "g2_blocks": 8,
        "g3_blocks": 64,
        "block_tokens": 16,
        "byte_scale": 0.25,
    }
    if adapters:
        (tmp_path / "adapters.txt").write_text("a0\na1\n")
        sim |= {"lora_adapters": str(tmp_path / "adapters.txt"), "lora_adapter_bytes": 65536}
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "kind": "sim", "model": "m", "sim": sim}))
    return path


def start(
    tmp_path: Path, workdir: Path, adapters: bool = True
) -> tuple[subprocess.Popen[str], dict]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spark_harness.sim",
            "--stack",
            str(stack_file(tmp_path, adapters)),
            "--workdir",
            str(workdir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    info = json.loads(line)
    base = f"http://{info['host']}:{info['port']}"
    deadline = time.monotonic() + 20
    while True:  # listening starts after set-up (adapter files)
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                assert r.status == 200
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise
            time.sleep(0.05)
    info["base"] = base
    return proc, info


def post(base: str, body: dict) -> bytes:
    req = urllib.request.Request(
        base + "/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_signalled_then_removes_its_files(tmp_path: Path, sig: int) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    proc, info = start(tmp_path, workdir)
    try:
        assert info["host"] == "127.0.0.1"
        assert info["g3_dir"] == str(workdir / "g3") and info["lora_dir"] == str(workdir / "lora")
        assert info["block_bytes"] == 65536 and info["block_bytes_full_scale"] == 262144
        assert len(list((workdir / "g3").iterdir())) == 1
        assert len(list((workdir / "lora").iterdir())) == 2
        body = json.loads(post(info["base"], {"model": "m", "prompt": "a b c", "max_tokens": 3}))
        assert body["usage"]["completion_tokens"] == 3
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(workdir.iterdir()) == []  # G3 file, adapters and their directories gone


def test_open_streams_end_at_shutdown(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    proc, info = start(tmp_path, workdir, adapters=False)
    try:
        req = urllib.request.Request(
            info["base"] + "/v1/completions",
            data=json.dumps(
                {"model": "m", "prompt": "a b", "max_tokens": 400, "stream": True}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as stream:
            assert stream.readline().startswith(b"data: ")
            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            rest = stream.read()  # the server ends the stream instead of hanging
        assert b"shutting down" in rest and rest.rstrip().endswith(b"data: [DONE]")
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not (workdir / "g3").exists()


def running(base: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("vllm:num_requests_running"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no vllm:num_requests_running")


def test_a_vanished_client_frees_its_request(tmp_path: Path) -> None:
    proc, info = start(tmp_path, tmp_path / "work", adapters=False)
    try:
        body = json.dumps({"model": "m", "prompt": "a b", "max_tokens": 400}).encode()
        with socket.create_connection((info["host"], info["port"])) as s:
            s.sendall(
                b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            deadline = time.monotonic() + 5
            while running(info["base"]) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert running(info["base"]) == 1
        # 400 tokens take over a second and a half; the disconnect ends it at once
        deadline = time.monotonic() + 0.5
        while running(info["base"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert running(info["base"]) == 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_bad_stack_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "t", "kind": "sim", "model": "m", "sim": {"mode": "uma", "g2_blocks": 3}}
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "spark_harness.sim", "--stack", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "sim.g2_blocks: mode uma has G1 only" in done.stderr
