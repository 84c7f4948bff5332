"""The unified-memory budget: arithmetic, and every point of the Spark plan checked
before anything runs, its largest points included."""

from __future__ import annotations

import copy

import pytest

from spark_harness.plan import PlanError
from spark_harness.serving.budget import Budget, BudgetError, budget, check_budget
from tests.serving.test_stacks import spark_config, spark_plan


def _server(**params: object) -> dict:
    base = {"memory_gb": 128, "weights_gb": 6, "headroom_gb": 16,
            "free_gpu_memory_fraction": 0.6, "cpu_cache_gb": 32}  # fmt: skip
    return {"name": "s", "kind": "command", "params": {**base, **params}}


def test_g1_is_the_fraction_of_memory_free_after_weights() -> None:
    b = budget(_server())
    assert b == Budget(128, 6, 16, 0.6, 32)
    assert b.g1_gb == pytest.approx(0.6 * 106)
    assert b.total_gb == pytest.approx(6 + 63.6 + 32 + 16)


def test_a_point_over_memory_fails_with_its_numbers() -> None:
    with pytest.raises(BudgetError) as e:
        check_budget(_server(cpu_cache_gb=64))
    msg = str(e.value)
    assert "weights 6.0 + G1 63.6 (0.6 of 106.0 free) + pinned host cache 64.0" in msg
    assert "headroom 16.0 = 149.6 GB > 128 GB unified memory" in msg


def test_no_host_tier_and_no_declared_budget() -> None:
    assert check_budget(_server(cpu_cache_gb=None)).host_cache_gb == 0
    assert budget({"name": "sim", "kind": "sim", "sim": {}}) is None
    with pytest.raises(BudgetError, match=r"params\.weights_gb must be a number"):
        budget(_server(weights_gb="{env.W}"))


def test_every_spark_point_fits_and_the_largest_are_near_the_limit() -> None:
    runs = spark_plan().runs()  # the plan checks each point as it is built
    totals = {(r.hyp, r.stack, r.point): check_budget(r.spec["server"]) for r in runs}
    assert all(b is not None and b.total_gb <= 128 for b in totals.values())
    largest = max(totals, key=lambda k: totals[k].total_gb)
    assert largest == ("H6", "B", "g2gb-64")
    assert totals[largest].host_cache_gb == 64 and totals[largest].total_gb > 120


def test_the_largest_host_tier_at_stack_bs_own_g1_fails_the_plan() -> None:
    cfg = copy.deepcopy(spark_config())
    del cfg["hypotheses"]["H6"]["server"]  # G1 back at 0.6 of free memory
    with pytest.raises(PlanError, match=r"H6 point g2gb-64 \(stack B\): memory budget exceeded"):
        spark_plan(cfg)
