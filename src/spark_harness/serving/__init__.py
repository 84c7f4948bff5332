"""Bringing servers up and down: the embedded simulator, command stacks, external endpoints.

``serve(spec, ...)`` publishes a :class:`~spark_harness.contract.Endpoint` file as soon as
the port is chosen and then keeps the server up until SIGTERM/SIGINT. Readiness is the
consumer's job (:mod:`spark_harness.serving.readiness`), never Snakemake's file wait.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def serve(
    spec: dict[str, Any],
    name: str,
    endpoint_file: Path,
    workdir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    log: Path | None = None,
) -> int:
    """Bring the stack described by ``spec`` up and block until told to stop."""
    kind = spec["kind"]
    if kind == "sim":
        from spark_harness.serving.sim import serve_sim

        return serve_sim(spec, name, endpoint_file, workdir, host, port, log)
    if kind == "command":
        from spark_harness.serving.command import serve_command

        return serve_command(spec, name, endpoint_file, workdir, host, port, log)
    if kind == "external":
        from spark_harness.serving.external import serve_external

        return serve_external(spec, name, endpoint_file, log)
    raise ValueError(f"unknown stack kind {kind!r}")
