"""Render vLLM's tiered-offloading `/metrics` with vLLM's own code, for a known traffic.

vLLM offloads KV only on CUDA or XPU, so no engine on a CPU machine can show these
series. This feeds vLLM's own stats objects with a known traffic and renders them
through vLLM's own Prometheus classes:

- the scheduler side's ``OffloadingConnectorStats``, filled as vLLM's
  ``update_connector_output`` fills it from its workers' transfers (GPU <-> host);
- the tiering manager's ``TieringMetricsTracker``, given finished cascade (host ->
  files) and promotion (files -> host) jobs of an ``fs`` tier;
- the connector's Prometheus metrics (``KVConnectorProm`` for the stack's
  ``kv-transfer-config``, the class vLLM's stat logger builds), observed once.

So the names, types, labels and units are vLLM's, and the values are the traffic below,
which the mapping test checks field by field (tests/telemetry/test_mapping.py). Run with
the engines' interpreter (tools/install_vllm_cpu.sh):

    .venv-vllm/bin/python tools/render_vllm_offload_metrics.py \
        tests/telemetry/fixtures/vllm_offload_tiering_0.31.0.prom
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from prometheus_client import REGISTRY, generate_latest
from vllm.config import KVTransferConfig
from vllm.distributed.kv_transfer.kv_connector.v1.metrics import KVConnectorProm
from vllm.distributed.kv_transfer.kv_connector.v1.offloading.metrics import (
    OffloadingConnectorStats,
    _TransferMetricName,
)
from vllm.v1.kv_offload.tiering.base import JobResult, TransferJob
from vllm.v1.kv_offload.tiering.metrics import TieringMetricsTracker

#: bytes of one offloaded chunk: one block of 16 tokens of the tiny model
#: (config/stacks/vllm-tiered.yaml's block_bytes)
CHUNK_BYTES = 65536
#: the traffic, in chunks: GPU -> host, host -> GPU, host -> files, files -> host
STORED, LOADED, CASCADED, PROMOTED = 40, 12, 30, 5


def connector_stats() -> OffloadingConnectorStats:
    """GPU <-> host transfers as the scheduler records its workers' reports."""
    stats = OffloadingConnectorStats()
    for bytes_name, time_name, size_name, chunks, seconds in (
        (_TransferMetricName.LOAD_BYTES, _TransferMetricName.LOAD_TIME,
         _TransferMetricName.LOAD_SIZE, LOADED, 0.004),
        (_TransferMetricName.STORE_BYTES, _TransferMetricName.STORE_TIME,
         _TransferMetricName.STORE_SIZE, STORED, 0.010),
    ):  # fmt: skip
        stats.increase_counter(bytes_name, chunks * CHUNK_BYTES)
        stats.increase_counter(time_name, seconds)
        stats.observe_histogram(size_name, chunks * CHUNK_BYTES)
    return stats


def tiering_stats() -> OffloadingConnectorStats:
    """One cascade and one promotion job of the ``fs`` tier, finished."""
    tracker = TieringMetricsTracker(["fs"], num_primary_chunks=1024, primary_chunk_size=CHUNK_BYTES)
    for job_id, chunks, promotion, seconds in (
        (1, CASCADED, False, 0.020),
        (2, PROMOTED, True, 0.006),
    ):
        job = TransferJob(job_id, keys=list(range(chunks)), chunk_ids=np.arange(chunks),
                          is_promotion=promotion, req_context=None)  # fmt: skip
        meta = SimpleNamespace(transfer_job=job, tier_idx=0)
        tracker.on_job_registered(meta)
        tracker.on_job_finished(meta, JobResult(job_id, success=True, transfer_time=seconds))
    stats = tracker.take_stats()
    assert stats is not None
    return stats


def main(out: Path) -> None:
    config = KVTransferConfig(
        kv_connector="OffloadingConnector",
        kv_role="kv_both",
        kv_connector_extra_config={
            "spec_name": "TieringOffloadingSpec",
            "cpu_bytes_to_use": 1 << 30,
            "secondary_tiers": [{"type": "fs", "root_dir": "/tmp/unused"}],
        },
    )
    prom = KVConnectorProm(SimpleNamespace(kv_transfer_config=config), ["model_name", "engine"],
                           {0: ["tiny", "0"]})  # fmt: skip
    stats = connector_stats()
    stats.aggregate(tiering_stats())
    prom.observe(stats.data, engine_idx=0)
    text = generate_latest(REGISTRY).decode()
    # vLLM's families only (not the interpreter's process and GC series)
    keep = [ln for ln in text.splitlines() if "vllm:" in ln]
    out.write_text("\n".join(keep) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
