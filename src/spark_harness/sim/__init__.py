"""The embedded simulator: an OpenAI-compatible server with storage in the loop.

Compute is modeled (step times from model and hardware profiles); storage is real (G3
KV blocks and LoRA adapters are files read from the device). See docs/SIMULATOR.md.

Entry points for ``spark-harness serve`` (``serving/sim.py``)::

    run_server(sock, spec, workdir)    # serve until SIGTERM/SIGINT, then clean up
    endpoint_facts(spec, workdir)      # g3_dir, block_bytes, max_num_tokens, lora_dir
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from spark_harness.sim.config import endpoint_facts

__all__ = ["endpoint_facts", "run_server"]


def run_server(sock: socket.socket, spec: dict[str, Any], workdir: Path) -> None:
    """Serve until SIGTERM/SIGINT, then clean up (see :mod:`spark_harness.sim.server`).

    The server and aiohttp are imported here, not at package import, so that
    ``spark-harness serve`` can publish its endpoint file (which only needs
    :func:`endpoint_facts`) before paying for them: every point waits on that file.
    """
    from spark_harness.sim.server import run_server as serve

    serve(sock, spec, workdir)
