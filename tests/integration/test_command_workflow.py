"""Command and external stacks through the real workflow: `onerror:` teardown, an
endpoint started outside Snakemake."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys

import polars as pl
import pytest
import yaml

from spark_harness.contract import Endpoint, wait_for_file
from spark_harness.serving.process import pid_alive
from spark_harness.serving.readiness import wait_ready
from tests.conftest import REPO, copy_workflow
from tests.workflow.smk import snakemake, wait_no_orphans, write_config

pytestmark = pytest.mark.workflow

PLAN = {
    "results_dir": "results",
    "defaults": {
        "repetitions": 1,
        "seed": 3,
        "phases": {"idle_s": 0.3, "warmup_s": 0.2, "load_s": 1.0, "cooldown_s": 0.1},
        "telemetry": {"cadence_ms": 100, "devices": "auto"},
        "workload": {"kind": "fixed_context", "context_tokens": 32, "output_tokens": 4},
        "load": {"kind": "closed", "users": 1},
    },
}

# Never ready, and its teardown records which process ran it: the serve process itself
# (orderly stop) or Snakemake's `onerror:` (the only one left once a service is killed).
NEVER_READY = {
    "name": "never-ready",
    "kind": "command",
    "model": "m",
    "startup_timeout_s": 2,
    "params": {"marker": "MARKER"},
    "command": {
        "processes": [
            {"name": "sleeper", "argv": ["python3", "-c", "import time; time.sleep(300)"]}
        ],
        "teardown": "(tr '\\0' ' ' < /proc/$PPID/cmdline; echo) >> {params.marker}",
    },
}


def test_onerror_runs_the_teardown_of_command_stacks(tmp_path):
    root = copy_workflow(tmp_path / "repo")
    marker = tmp_path / "teardown.log"
    stack = copy.deepcopy(NEVER_READY)
    stack["params"]["marker"] = str(marker)
    (root / "config/stacks/never-ready.yaml").write_text(yaml.safe_dump(stack))
    cfg = copy.deepcopy(PLAN)
    cfg["stacks"] = {"N": {"file": "config/stacks/never-ready.yaml"}}
    cfg["hypotheses"] = {
        "H0": {
            "stacks": ["N"],
            "sweep": [{"key": "load.users", "role": "concurrency", "values": [1]}],
        }
    }
    write_config(root, cfg)
    out = snakemake(root, "H0")
    assert out.returncode != 0
    assert "not ready after 2 s" in (root / "results/logs/H0/N/users-1/r0/loadgen.log").read_text()
    ran_by = [line for line in marker.read_text().splitlines() if line.strip()]
    assert any("snakemake" in line for line in ran_by), ran_by  # the onerror: handler
    assert wait_no_orphans(root) == []


@pytest.fixture
def outside_server(tmp_path):
    """A simulator server started outside the workflow, as someone else's endpoint."""
    ep_file = tmp_path / "outside/endpoint.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "spark_harness", "serve", "--stack",
         str(REPO / "config/stacks/sim-uma.yaml"), "--endpoint-file", str(ep_file),
         "--workdir", str(tmp_path / "outside/work")],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_file(ep_file, 30)
        ep = Endpoint.read(ep_file)
        wait_ready(ep, timeout_s=30)
        yield ep, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_external_stack_is_measured_and_left_running(tmp_path, outside_server):
    ep, proc = outside_server
    root = copy_workflow(tmp_path / "repo")
    external = {
        "name": "outside",
        "kind": "external",
        "model": ep.model,
        "startup_timeout_s": 10,
        "external": {"base_url": ep.base_url, "metrics": [{"url": ep.metrics[0].url,
                                                           "source": "sim"}]},
    }  # fmt: skip
    (root / "config/stacks/outside.yaml").write_text(yaml.safe_dump(external))
    cfg = copy.deepcopy(PLAN)
    cfg["stacks"] = {"X": {"file": "config/stacks/outside.yaml"}}
    cfg["hypotheses"] = {
        "H0": {
            "stacks": ["X"],
            "sweep": [{"key": "load.users", "role": "concurrency", "values": [1, 2]}],
        }
    }
    write_config(root, cfg)
    out = snakemake(root, "H0")
    assert out.returncode == 0, out.out[-4000:]
    for users in (1, 2):
        run = json.loads((root / f"results/raw/H0/X/users-{users}/r0/run.json").read_text())
        assert run["outcome"] == "ok" and run["endpoint"]["kind"] == "external"
        assert run["endpoint"]["base_url"] == ep.base_url
    req = pl.read_parquet(root / "results/ingest/H0/X/requests.parquet")
    assert req.filter(pl.col("phase") == "load").height > 0
    assert req["error"].is_null().all()
    tel = (root / "results/raw/H0/X/users-2/r0/telemetry.jsonl").read_text()
    assert '"kv_g1_usage"' in tel  # scraped from the outside server's /metrics
    assert proc.poll() is None and pid_alive(ep.pid)  # not the workflow's to stop
    assert wait_no_orphans(root) == []
