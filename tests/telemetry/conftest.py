"""Fixtures for tests that run the sidecar as the workflow does: a separate process that
finds the server through its endpoint file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spark_harness import contract
from spark_harness.telemetry.window import wait_sampling

SIDECAR = [sys.executable, "-m", "spark_harness.telemetry", "sidecar"]


@dataclass
class Point:
    """One point's service files and spool, and the sidecar processes started for it."""

    root: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def endpoint(self) -> Path:
        return self.root / "services" / "endpoint.json"

    @property
    def service(self) -> Path:
        return self.root / "services" / "sidecar.json"

    @property
    def spool(self) -> Path:
        return self.root / "scratch" / "telemetry.spool.jsonl"

    def write_endpoint(self, **fields: Any) -> contract.Endpoint:
        """The endpoint file as ``server_up`` writes it; defaults describe this process."""
        values: dict[str, Any] = {
            "stack": "test",
            "kind": "sim",
            "base_url": "http://127.0.0.1:9",
            "model": "m",
            "pid": os.getpid(),
            "startup_timeout_s": 5.0,
        }
        values.update(fields)
        values["metrics"] = [contract.MetricsSource(**m) for m in values.get("metrics", [])]
        ep = contract.Endpoint(**values)
        ep.write(self.endpoint)
        return ep

    def args(self, *extra: str) -> list[str]:
        return [
            "--endpoint-file", str(self.endpoint),
            "--service-file", str(self.service),
            "--spool", str(self.spool),
            *extra,
        ]  # fmt: skip

    def start_sidecar(self, *extra: str, **popen: Any) -> subprocess.Popen[str]:
        """``python -m spark_harness.telemetry sidecar`` for this point."""
        p = subprocess.Popen(
            [*SIDECAR, *self.args(*extra)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **popen,
        )
        self.procs.append(p)
        return p

    def info(self, timeout_s: float = 20.0) -> contract.SidecarInfo:
        contract.wait_for_file(self.service, timeout_s)
        return contract.SidecarInfo.read(self.service)

    def sampling(self, timeout_s: float = 20.0) -> contract.SidecarInfo:
        """The sidecar's file once it has spooled its first sample: it publishes itself
        before it samples, and measure.py waits the same way before measuring."""
        info = self.info(timeout_s)
        wait_sampling(info, timeout_s)
        return info


@pytest.fixture
def point(tmp_path: Path) -> Iterator[Point]:
    pt = Point(tmp_path)
    yield pt
    for p in pt.procs:  # nothing the test started outlives it
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p.stdout:
            p.stdout.close()
