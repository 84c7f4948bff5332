"""``kind: sim`` — the embedded simulator, served in this very process.

The socket is bound first so the endpoint file can name the port at once; the
simulator then listens on it until SIGTERM/SIGINT and removes its G3 files on the way out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from spark_harness.clock import Clock
from spark_harness.contract import Endpoint, MetricsSource
from spark_harness.serving.process import bind_socket


def serve_sim(
    spec: dict[str, Any],
    name: str,
    endpoint_file: Path,
    workdir: Path,
    host: str,
    port: int,
    log: Path | None,
) -> int:
    from spark_harness import sim

    clock = Clock.start()
    workdir.mkdir(parents=True, exist_ok=True)
    sock = bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    base = f"http://{url_host}:{bound_port}"
    facts = sim.endpoint_facts(spec, workdir)
    Endpoint(
        stack=name,
        kind="sim",
        base_url=base,
        model=spec["model"],
        pid=os.getpid(),
        pids=[os.getpid()],
        log=str(log) if log else None,
        metrics=[MetricsSource(url=f"{base}/metrics", format="prometheus", source="sim")],
        health_url=f"{base}/health",
        startup_timeout_s=float(spec.get("startup_timeout_s", 60)),
        started_ns=clock.now_ns(),
        g3_dir=facts.get("g3_dir"),
        block_bytes=facts.get("block_bytes"),
        max_num_tokens=facts.get("max_num_tokens"),
        prime=spec.get("prime"),
        extra={
            k: v for k, v in facts.items() if k not in ("g3_dir", "block_bytes", "max_num_tokens")
        },
    ).write(endpoint_file)
    sim.run_server(sock, spec, workdir)
    return 0
