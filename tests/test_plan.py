"""Plan expansion: points, specs, overrides, ordering, and errors that name the key."""

from __future__ import annotations

import copy
import json

import pytest

from spark_harness.analysis.hypotheses import EVALUATORS
from spark_harness.plan import Plan, PlanError, deep_merge, load_config, resolve_stack
from tests.conftest import REPO

BASE = {
    "stacks": {
        "A": {"file": "config/stacks/sim-uma.yaml"},
        "B": {"file": "config/stacks/sim-tiered.yaml"},
        "B0": {"file": "config/stacks/sim-tiered.yaml", "variant": "B0"},
        "B2": {"file": "config/stacks/sim-tiered.yaml", "variant": "B2"},
    },
    "defaults": {
        "repetitions": 2,
        "seed": 100,
        "phases": {"idle_s": 1, "warmup_s": 1, "load_s": 2, "cooldown_s": 1},
        "workload": {"kind": "fixed_context", "context_tokens": 64, "output_tokens": 4},
        "load": {"kind": "closed", "users": 2},
    },
    "hypotheses": {
        "H0": {
            "stacks": ["A", "B"],
            "sweep": [
                {"key": "load.users", "role": "concurrency", "name": "users", "values": [1, 4]}
            ],
        },
        "H2B": {
            "stacks": ["B"],
            "load": {"kind": "closed", "users": "u_work"},
            "sweep": [
                {
                    "key": "workload.context_tokens",
                    "role": "context",
                    "name": "ctx",
                    "values": [64, 128],
                }
            ],
        },
        "H6": {
            "stacks": ["B"],
            "repetitions": 1,
            "sweep": [
                {
                    "key": "server.sim.g2_blocks",
                    "role": "tier_capacity",
                    "name": "g2",
                    "values": [16, 32],
                },
                {
                    "key": "server.sim.eviction",
                    "role": "eviction_policy",
                    "name": "policy",
                    "values": ["lru", "fifo"],
                },
            ],
        },
        "H7": {"analytical": {"from": ["H2B"]}},
        "H9": {"stacks": ["B0", "B2"], "order": "alternate"},
    },
}


def plan(cfg: dict | None = None) -> Plan:
    return Plan(cfg or BASE, base_dir=REPO)


def test_points_are_the_product_of_sweep_axes_times_stacks_times_repetitions():
    p = plan()
    assert len(p.runs("H0")) == 2 * 2 * 2
    h6 = p.runs("H6")
    assert sorted({r.point for r in h6}) == [
        "g2-16_policy-fifo",
        "g2-16_policy-lru",
        "g2-32_policy-fifo",
        "g2-32_policy-lru",
    ]
    assert p.runs("H7") == [] and p.analytical() == ["H7"]


def test_spec_holds_resolved_point_and_merged_server():
    r = plan().run("H6", "B", "g2-32_policy-fifo", 0)
    assert r.spec["server"]["sim"]["g2_blocks"] == 32
    assert r.spec["server"]["sim"]["eviction"] == "fifo"
    assert r.spec["server"]["sim"]["mode"] == "tiered"  # from the stack file
    assert r.spec["axes"] == {"server.sim.g2_blocks": 32, "server.sim.eviction": "fifo"}
    assert r.spec["phases"]["load_s"] == 2 and "server" not in r.spec["workload"]
    json.loads(r.spec_json())  # serialisable, stable


def test_repetition_r_uses_seed_base_plus_r_across_stacks():
    p = plan()
    seeds = {(r.stack, r.rep): r.spec["seed"] for r in p.runs("H0") if r.point == "users-1"}
    assert seeds == {("A", 0): 100, ("A", 1): 101, ("B", 0): 100, ("B", 1): 101}


def test_variant_applies_overrides_from_the_stack_file():
    b0 = plan().run("H9", "B0", "base", 0).spec["server"]
    assert b0["variant"] == "B0" and b0["sim"]["g2_blocks"] == 0 and b0["sim"]["g3_blocks"] == 0


def test_alternate_order_chains_runs_ab_then_ba():
    p = plan()
    assert p.previous_in_order(p.run("H9", "B0", "base", 0)) is None
    assert p.previous_in_order(p.run("H9", "B2", "base", 0)).stack == "B0"
    assert p.previous_in_order(p.run("H9", "B2", "base", 1)) is None
    assert p.previous_in_order(p.run("H9", "B0", "base", 1)).stack == "B2"


def test_u_work_points_are_flagged_and_need_h0():
    p = plan()
    assert all(p.needs_u_work(r) for r in p.runs("H2B"))
    cfg = copy.deepcopy(BASE)
    del cfg["hypotheses"]["H0"]
    with pytest.raises(PlanError, match=r"hypotheses\.H2B\.load\.users.*needs H0"):
        plan(cfg)


def test_editing_one_sweep_changes_only_that_hypothesis_specs():
    before = {(r.hyp, r.stack, r.point, r.rep): r.spec_json() for r in plan().runs()}
    cfg = copy.deepcopy(BASE)
    cfg["hypotheses"]["H2B"]["sweep"][0]["values"] = [64, 256]
    after = {(r.hyp, r.stack, r.point, r.rep): r.spec_json() for r in plan(cfg).runs()}
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == {("H2B", "B", "ctx-256", 0), ("H2B", "B", "ctx-256", 1)}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["hypotheses"]["H0"].update(sweeep=[]), "sweeep"),
        (lambda c: c["defaults"].update(repetitions="two"), "defaults.repetitions"),
        (lambda c: c["hypotheses"]["H0"].update(stacks=["Z"]), r"hypotheses\.H0\.stacks: 'Z'"),
        (
            lambda c: c["hypotheses"]["H7"]["analytical"].update({"from": ["H5"]}),
            "H5 is not in the plan",
        ),
        (lambda c: c["hypotheses"].update(H99={"stacks": ["A"]}), "H99"),
        (lambda c: c["stacks"]["A"].update(file="config/stacks/nope.yaml"), "nope.yaml"),
        (lambda c: c["stacks"]["B0"].update(variant="B7"), "variant 'B7' not defined"),
        (
            lambda c: c["hypotheses"]["H6"]["sweep"][1].update(values=["lru", "random"]),
            r"sim\.eviction: 'random' is not one of",
        ),
    ],
)
def test_invalid_plans_fail_naming_the_key(mutate, message):
    cfg = copy.deepcopy(BASE)
    mutate(cfg)
    with pytest.raises(PlanError, match=message):
        plan(cfg)


def test_shipped_configs_are_valid():
    p = Plan(load_config(REPO / "config/config.yaml"), base_dir=REPO)
    assert set(p.hypotheses) >= set(EVALUATORS)  # every hypothesis of the plan


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    assert deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "e": 2}) == {
        "a": {"b": 1, "c": [2]},
        "d": 1,
        "e": 2,
    }


def test_resolve_stack_by_hand_applies_overrides():
    spec = resolve_stack(REPO / "config/stacks/sim-tiered.yaml", "B1", {"sim": {"g1_blocks": 8}})
    assert spec["sim"]["g3_blocks"] == 0 and spec["sim"]["g1_blocks"] == 8
