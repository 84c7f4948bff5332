"""What the first run on a DGX Spark depends on, read from the resolved stack files:
A and B0 differ by Dynamo alone, every Dynamo listener is on loopback, the worker
publishes its KV metrics, KVBM gets time to allocate, no deprecated switch is set."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from spark_harness.plan import deep_merge, load_config, resolve_stack
from spark_harness.serving.command import resolve
from tests.conftest import REPO
from tests.serving.test_stacks import spark_config, spark_plan

STACKS = REPO / "config/stacks"
LISTENER_HOSTS = ("DYN_HTTP_HOST", "DYN_TCP_RPC_HOST", "DYN_TCP_RESPONSE_STREAM_HOST",
                  "DYN_EVENT_PLANE_HOST", "DYN_SYSTEM_HOST")  # fmt: skip


def _engine(spec: dict, tmp_path: Path) -> tuple[str, dict]:
    """The image a stack runs and the engine file its TensorRT-LLM reads."""
    r = resolve(spec, tmp_path, "127.0.0.1", 0)
    (engine,) = r["files"].values()
    return spec["params"]["image"], engine["yaml"]


def test_a_and_b0_run_the_same_image_and_engine_settings(tmp_path: Path) -> None:
    servers = {r.stack: r.spec["server"] for r in spark_plan().runs() if r.hyp in ("H0", "H9")}
    image_a, engine_a = _engine(servers["A"], tmp_path / "a")
    image_b0, engine_b0 = _engine(servers["B0"], tmp_path / "b0")
    assert image_a == image_b0
    assert engine_b0.pop("kv_connector_config") is None  # KVBM off
    # H9 shrinks G1 for all its modes; everything else is the same engine
    engine_b0["kv_cache_config"].pop("free_gpu_memory_fraction")
    engine_a["kv_cache_config"].pop("free_gpu_memory_fraction")
    assert engine_a == engine_b0
    assert engine_a["cuda_graph_config"] is None
    a, b0 = (resolve_stack(STACKS / f, v) for f, v in (("trtllm-uma.yaml", None),
                                                       ("dynamo-kvbm.yaml", "B0")))  # fmt: skip
    assert a["params"]["free_gpu_memory_fraction"] == b0["params"]["free_gpu_memory_fraction"]


@pytest.mark.parametrize(("file", "variant"), [("dynamo-kvbm.yaml", v) for v in ("B0", "B2")]
                         + [("dynamo-mocker.yaml", "B2")])  # fmt: skip
def test_every_dynamo_process_pins_its_listeners_to_loopback(
    file: str, variant: str, tmp_path: Path
) -> None:
    r = resolve(resolve_stack(STACKS / file, variant), tmp_path, "127.0.0.1", 0)
    for proc in r["processes"]:
        env = proc["env"]
        assert {k: env.get(k) for k in LISTENER_HOSTS} == dict.fromkeys(
            LISTENER_HOSTS, "127.0.0.1"
        ), proc["name"]
        assert "DYN_SYSTEM_ENABLED" not in env  # deprecated in 1.6.1: DYN_SYSTEM_PORT rules
        argv = proc.get("argv") or []
        if argv[:2] == ["docker", "run"]:  # a container sees only the variables passed in
            passed = {argv[i + 1].split("=", 1)[0] for i, a in enumerate(argv) if a == "-e"}
            assert set(env) <= passed, proc["name"]


def test_the_kvbm_worker_publishes_metrics_and_waits_for_its_tiers(tmp_path: Path) -> None:
    r = resolve(resolve_stack(STACKS / "dynamo-kvbm.yaml", "B2"), tmp_path, "127.0.0.1", 0)
    worker = next(p for p in r["processes"] if p["name"] == "worker")
    assert "--publish-metrics" in worker["argv"]
    assert int(worker["env"]["DYN_KVBM_LEADER_WORKER_INIT_TIMEOUT_SECS"]) > 120
    assert worker["env"]["DYN_KVBM_LEADER_ZMQ_HOST"] == "127.0.0.1"


def test_the_worker_flag_exists_in_the_installed_dynamo() -> None:
    """Read, not imported: the worker's package needs TensorRT-LLM."""
    spec = importlib.util.find_spec("dynamo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("ai-dynamo not installed (tools/install_dynamo.sh)")
    args = Path(spec.submodule_search_locations[0]) / "trtllm/backend_args.py"
    assert 'flag_name="--publish-metrics"' in args.read_text()


def test_the_smoke_plan_runs_one_short_point_of_every_hypothesis() -> None:
    cfg = spark_config()
    cfg = deep_merge(cfg, load_config(REPO / "config/spark-smoke.yaml"))
    plan = spark_plan(cfg)
    runs = plan.runs()
    measured = {h for h, c in cfg["hypotheses"].items() if "analytical" not in c}
    assert {r.hyp for r in runs} == measured
    per_stack = Counter((r.hyp, r.stack) for r in runs)
    assert set(per_stack.values()) == {1}
    # every window short: a hypothesis's own phases in config/spark.yaml must not leak in
    assert {r.spec["phases"]["load_s"] for r in runs} == {30}
    seconds = sum(sum(r.spec["phases"].values()) for r in runs)
    assert seconds <= 10 * 60  # measurement; the rest of 15 minutes is start-ups
    assert plan.results == "results/spark-smoke"
    assert {r.point for r in runs if r.hyp == "H6"} == {"g2gb-64"}  # the largest budget
