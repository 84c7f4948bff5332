"""A keyed simulator: its key passed by environment, never on a command line; the
readiness check and the load generator send it (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spark_harness.contract import Endpoint, wait_for_file
from spark_harness.loadgen.client import Client
from spark_harness.loadgen.record import Attempt
from spark_harness.serving.readiness import wait_ready
from spark_harness.workloads import Request

KEY = "s3cret-key-4711"
SIM = {"mode": "uma", "g1_blocks": 64, "block_tokens": 16, "max_num_seqs": 4}


def serve(tmp_path: Path, sim: dict, env: dict[str, str]) -> subprocess.Popen[str]:
    spec = {"name": "k", "kind": "sim", "model": "m", "sim": sim}
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "spark_harness", "serve", "--stack-json", json.dumps(spec)),
            *("--endpoint-file", str(tmp_path / "ep.json"), "--workdir", str(tmp_path / "w")),
        ],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_keyed_server_becomes_ready_and_the_loadgen_sends_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = serve(tmp_path, {**SIM, "api_key_env": "SH_TEST_KEY"}, {"SH_TEST_KEY": KEY})
    try:
        wait_for_file(tmp_path / "ep.json", 20)
        assert KEY not in Path(f"/proc/{proc.pid}/cmdline").read_text()
        ep = Endpoint.read(tmp_path / "ep.json")
        assert KEY not in (tmp_path / "ep.json").read_text()
        monkeypatch.setenv("SH_TEST_KEY", KEY)  # the consumer's environment, as Snakemake's
        assert wait_ready(ep, timeout_s=20) < 20

        async def completion() -> int | None:
            async with Client(ep, connections=1, timeout_s=5) as client:
                att = Attempt(request_id="r1", phase="load", ready_ns=time.monotonic_ns())
                await client.send(Request("a b c", 3, 2), att)
                return att.status

        assert asyncio.run(completion()) == 200
        monkeypatch.setenv("SH_TEST_KEY", "wrong")
        assert asyncio.run(completion()) == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_a_secret_on_the_command_line_is_refused(tmp_path: Path) -> None:
    proc = serve(tmp_path, {**SIM, "api_key": KEY}, {})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "--stack-json carries the secret sim.api_key" in err and KEY not in err
    assert not (tmp_path / "ep.json").exists()


def test_an_unreadable_key_reference_is_a_clear_error(tmp_path: Path) -> None:
    proc = serve(tmp_path, {**SIM, "api_key_file": str(tmp_path / "missing")}, {})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "cannot read the API key file" in err
    assert "Traceback" not in err
