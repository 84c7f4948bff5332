"""benchmarks/oracle/worlds.yaml: every world is a valid plan that changes what it says.

The oracle (benchmarks/bench_oracle.py) takes minutes per world; a world that does not
resolve, or whose truth names a hypothesis it does not run, is found here instead.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from spark_harness.plan import Plan
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("bench_oracle", REPO / "benchmarks/bench_oracle.py")
assert spec and spec.loader
oracle = importlib.util.module_from_spec(spec)
sys.modules["bench_oracle"] = oracle
spec.loader.exec_module(oracle)
WORLDS = oracle.load_worlds()
STATUSES = {"supported", "not supported", "inconclusive", "invalid"}


def test_the_demo_world_is_the_shipped_plan_with_every_effect_planted():
    demo = next(w for w in WORLDS if w.name == "demo")
    plan = Plan(oracle.world_config(demo), REPO)
    assert set(demo.truth) == set(plan.hypotheses)
    assert set(demo.truth.values()) == {"supported"}


@pytest.mark.parametrize("world", WORLDS, ids=lambda w: w.name)
def test_world_resolves_to_a_plan_running_what_its_truth_grades(world):
    plan = Plan(oracle.world_config(world), REPO)  # schema, stacks, sweeps: as Snakemake does
    assert set(world.truth) <= set(plan.hypotheses)
    assert set(world.truth.values()) <= STATUSES
    for hyp in world.truth:
        assert plan.runs(hyp) or plan.hypotheses[hyp].get("analytical")


def test_a_world_changes_its_hypothesis_and_nothing_it_does_not_run():
    world = next(w for w in WORLDS if w.name == "H2A_a_fetches_from_g3")
    plan = Plan(oracle.world_config(world), REPO)
    assert set(plan.hypotheses) == {"H2A"}
    spec = plan.runs("H2A")[0].spec
    assert spec["server"]["sim"]["mode"] == "tiered" and spec["load"]["users"] == 4


@pytest.mark.parametrize(
    ("truth", "verdict", "grade"),
    [
        ("supported", "supported", "right"),
        ("not supported", "supported", "WRONG"),
        ("supported", "not supported", "WRONG"),
        ("not supported", "inconclusive", "undecided"),
        ("supported", "invalid", "undecided"),
        ("invalid", "invalid", "right"),
        ("invalid", "not supported", "undecided"),
        ("supported", None, "undecided"),
    ],
)
def test_grades(truth, verdict, grade):
    assert oracle.grade(truth, verdict) == grade
