"""The analysis on Spark-shaped data: the plan of config/spark.yaml (its axes, stacks and
3 repetitions), with runs that carry only what TensorRT-LLM, Dynamo and KVBM export
(KVBM block counters; no G3 fetch latency, no tier byte counters). Where its effect is
planted, every hypothesis reaches a decisive verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from spark_harness.analysis import summarize
from spark_harness.analysis.runs import load
from spark_harness.plan import Plan, deep_merge, load_config
from spark_harness_testkit.synthetic import World
from tests.analysis.conftest import synthesize
from tests.conftest import REPO

#: Effects planted large: a queueing knee at 16 users, G3 engaged from 2048 tokens
#: (30 % of TTFT) and a storage knee at 4096 (60 %), p99 steep in read await.
WORLD = World(
    spark=True,
    knee_users=16,
    engage_ctx=2048,
    engaged_share=0.3,
    storage_knee_ctx=4096,
    qos_slope=60.0,
    sessions_knee=64,  # H5: the G3 share grows over the whole 16-256 sessions sweep
)


def spark_plan() -> Plan:
    cfg = deep_merge(
        load_config(REPO / "config/config.yaml"), load_config(REPO / "config/spark.yaml")
    )
    return Plan(cfg, base_dir=REPO)


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Plan, dict[Any, Path]]:
    tmp = tmp_path_factory.mktemp("spark")
    plan = spark_plan()
    return tmp, plan, synthesize(tmp, plan, WORLD, set(plan.hypotheses))


def test_spark_shaped_runs_carry_only_what_the_stacks_export(spark):
    _, plan, ingested = spark
    data = load(ingested)
    runs = data.runs
    assert not data.fetch, "KVBM exports no G3 fetch latency"
    b = runs.filter(pl.col("stack").str.starts_with("B") & (pl.col("stack") != "B0"))
    assert b["g3_onboard_blocks"].null_count() == 0  # KVBM's block counters are there
    a = runs.filter(pl.col("stack") == "A")
    assert a["g3_onboard_blocks"].null_count() == a.height  # TensorRT-LLM has no tiers
    assert runs["sim_step_overrun"].null_count() == runs.height  # no simulator counters
    reps = runs.group_by("hyp", "stack", "point").len()["len"]
    assert reps.min() >= 3
    assert plan.hypotheses["H6"]["sweep"][0]["key"] == "server.params.cpu_cache_gb"


@pytest.mark.parametrize(
    "hyp",
    ["H0", "H1", "H2A", "H2B", "H3", "H4A", "H4B", "H5", "H6", "H7", "H8A", "H8B", "H9"],
)
def test_every_hypothesis_is_decisive_where_its_effect_is_planted(spark, hyp):
    tmp, plan, ingested = spark
    out = tmp / "summary" / hyp
    summarize(hyp, plan.hypotheses[hyp], {k: ingested[k] for k in plan.sources_of(hyp)}, out)
    v = json.loads((out / "verdict.json").read_text())
    assert v["status"] == "supported", v["reasons"]
