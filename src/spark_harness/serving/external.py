"""``kind: external`` — an endpoint someone else runs; we only publish and wait.

``server_up`` for an external stack writes the endpoint file and idles until SIGTERM;
the consumer's readiness check is the only contact with the server before the load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from spark_harness.clock import Clock
from spark_harness.contract import Endpoint, MetricsSource
from spark_harness.serving.process import StopSignal


def external_endpoint(spec: dict[str, Any], name: str, log: Path | None) -> Endpoint:
    ext = spec["external"]
    base = ext["base_url"].rstrip("/")
    health = ext.get("health", "/health")
    return Endpoint(
        stack=name,
        kind="external",
        base_url=base,
        model=spec["model"],
        pid=os.getpid(),
        pids=[int(p) for p in ext.get("pids", [])],
        log=str(log) if log else None,
        metrics=[MetricsSource(**m) for m in ext.get("metrics", [])],
        health_url=(base + health) if health else None,
        startup_timeout_s=float(spec.get("startup_timeout_s", 60)),
        started_ns=Clock.start().now_ns(),
        g3_dir=ext.get("g3_dir"),
        block_bytes=spec.get("block_bytes"),
        block_tokens=spec.get("block_tokens"),
        kv_tiers=spec.get("kv_tiers"),
        prime=spec.get("prime"),
        max_num_tokens=spec.get("max_num_tokens"),
    )


def serve_external(spec: dict[str, Any], name: str, endpoint_file: Path, log: Path | None) -> int:
    stop = StopSignal().install()
    external_endpoint(spec, name, log).write(endpoint_file)
    stop.wait()
    return 0
