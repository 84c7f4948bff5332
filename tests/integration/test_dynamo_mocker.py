"""NVIDIA Dynamo's real frontend + CPU mocker, end to end through the workflow's rules.

The same rules as every stack (server_up, telemetry_sidecar, loadgen, ingest, summary)
bring up a two-process command stack no one here wrote (config/stacks/dynamo-mocker.yaml)
for a small H0 and H9. The verdicts may be inconclusive or invalid (the mocker has no
disk tier and no device I/O); what must hold is the command path: requests measured with
the server's ``cached_tokens``, telemetry holding the frontend's ``dynamo_frontend_*``
and the mocker's ``vllm:*`` series, every process gone afterwards.

Needs ai-dynamo in this environment: ``tools/install_dynamo.sh .venv/bin/python``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import copy_workflow
from tests.workflow.smk import (
    VERDICT_STATUSES,
    run_infos,
    snakemake,
    telemetry_samples,
    verdict_statuses,
    wait_no_orphans,
    write_config,
)

pytestmark = [
    pytest.mark.workflow,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("dynamo") is None,
        reason="ai-dynamo not installed (tools/install_dynamo.sh .venv/bin/python)",
    ),
]

STACK = "config/stacks/dynamo-mocker.yaml"
PLAN = {
    "results_dir": "results",
    "stacks": {
        "M": {"file": STACK},
        **{m: {"file": STACK, "variant": m} for m in ("B0", "B1", "B2")},
    },
    "defaults": {
        "repetitions": 1,
        "seed": 7,
        "phases": {"idle_s": 0.5, "warmup_s": 0.5, "load_s": 2.0, "cooldown_s": 0.3},
        "telemetry": {"cadence_ms": 200, "devices": "auto"},
        "workload": {"kind": "fixed_context", "context_tokens": 64, "output_tokens": 8,
                     "nonce": True, "api": "chat"},
        "load": {"kind": "closed", "users": 2},
    },
    "hypotheses": {
        "H0": {"stacks": ["M"],
               "sweep": [{"key": "load.users", "role": "concurrency", "name": "users",
                          "values": [1, 2]}]},
        "H9": {
            "stacks": ["B0", "B1", "B2"],
            "order": "alternate",
            "workload": {"kind": "rehydrate", "sessions": 2, "context_tokens": 128,
                         "output_tokens": 4, "thrash_sessions": 4, "api": "chat"},
            "load": {"kind": "closed", "users": 2},
        },
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_workflow(tmp_path_factory.mktemp("dynamo"))
    write_config(root, PLAN)
    result = snakemake(root, "H0", "H9", timeout=900)
    assert result.returncode == 0, result.out[-6000:]
    return root


def test_every_point_measured_with_the_servers_token_counts(ran):
    infos = run_infos(ran)
    assert len(infos) == 5  # H0: 2 points, H9: 3 modes
    assert [(i["outcome"], i["endpoint"]["kind"]) for i in infos] == [("ok", "command")] * 5, infos
    req = pl.read_parquet(ran / "results/ingest/H0/M/requests.parquet")
    load = req.filter(pl.col("phase") == "load")
    assert load.height > 0 and load["error"].is_null().all()
    assert (load["ttft_ms"] > 0).all() and (load["prompt_tokens"] > 0).all()


def test_replayed_sessions_report_cached_tokens(ran):
    for mode in ("B0", "B1", "B2"):
        req = pl.read_parquet(ran / f"results/ingest/H9/{mode}/requests.parquet")
        assert "cached_tokens" in req.columns
        replay = req.filter(pl.col("phase") == "replay")
        assert replay.height == 2
        # the replayed prompt starts with the populated one: the mocker's prefix cache
        # (G1 holds it: 256 blocks of 16 tokens) reports the shared prefix as cached
        assert (replay["cached_tokens"] > 0).all(), replay.select("cached_tokens")


def test_telemetry_holds_frontend_and_mocker_series(ran):
    rows = telemetry_samples(ran)
    fields = set().union(*(r.keys() for r in rows))
    # only dynamo_frontend_* families map to frontend_* (telemetry/mapping.py)
    frontend = {"frontend_ttft_seconds_count", "frontend_inflight", "frontend_cached_tokens_sum"}
    # vllm:num_requests_running/_waiting, vllm:time_to_first_token_seconds, from the
    # mocker's system port; vllm:kv_cache_usage_perc -> kv_g1_usage
    vllm = {"kv_running", "kv_waiting", "server_ttft_seconds_count", "kv_g1_usage"}
    assert frontend | vllm <= fields, sorted(fields)
    assert max(r.get("frontend_ttft_seconds_count", 0) for r in rows) > 0
    assert max(r.get("server_ttft_seconds_count", 0) for r in rows) > 0
    # each H0 user re-sends its own prompt and H9 replays its sessions: the frontend
    # counts cached prompt tokens (H9's two replays may finish after its last sample, so
    # the check spans both hypotheses)
    assert max(r.get("frontend_cached_tokens_sum", 0) for r in rows) > 0


def test_summaries_written_and_no_process_left(ran):
    assert set(verdict_statuses(ran, "H0", "H9").values()) <= VERDICT_STATUSES
    # the frontend and mocker start in the repository copy and name their scratch
    # directory under it: the scan (working directory and command line) covers them
    assert wait_no_orphans(ran) == []
