"""The embedded simulator: an OpenAI-compatible server with storage in the loop.

Compute is modeled (step times from model and hardware profiles); storage is real (G3
KV blocks and LoRA adapters are files read from the device). See docs/SIMULATOR.md.

Entry points for ``spark-harness serve`` (``serving/sim.py``)::

    run_server(sock, spec, workdir)    # serve until SIGTERM/SIGINT, then clean up
    endpoint_facts(spec, workdir)      # g3_dir, block_bytes, max_num_tokens, lora_dir
"""

from __future__ import annotations

from spark_harness.sim.server import endpoint_facts, run_server

__all__ = ["endpoint_facts", "run_server"]
