"""Plan expansion: points, specs, overrides, ordering, and errors that name the key."""

from __future__ import annotations

import copy
import json

import pytest

from spark_harness.analysis.hypotheses import EVALUATORS
from spark_harness.plan import (
    STARTUP_ESTIMATE_S,
    Plan,
    PlanError,
    deep_merge,
    layered_config,
    load_config,
    resolve_stack,
)
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
        (
            lambda c: c["hypotheses"]["H0"].update(stacks=["Z"]),
            r"hypotheses\.H0\.stacks: 'Z' is not defined under `stacks` \(defined: A, B, B0, B2\)",
        ),
        (
            lambda c: c["hypotheses"]["H7"]["analytical"].update({"from": ["H5"]}),
            "H5 is not in the plan",
        ),
        (lambda c: c["hypotheses"].update(H99={"stacks": ["A"]}), "H99"),
        (lambda c: c.update(not_applicable={"H42": "why"}), r"not_applicable: H42 not in"),
        (lambda c: c.update(not_applicable={"H0": "why"}), r"H0 also under `hypotheses`"),
        (lambda c: c.update(not_applicable={"H1": ""}), r"not_applicable\.H1: '' should be"),
        (lambda c: c["stacks"]["A"].update(file="config/stacks/nope.yaml"), "nope.yaml"),
        (lambda c: c["stacks"]["B0"].update(variant="B7"), "variant 'B7' not defined"),
        (
            lambda c: c["hypotheses"]["H6"]["sweep"][1].update(values=["lru", "random"]),
            r"sim\.eviction: 'random' is not one of",
        ),
        (
            lambda c: c["hypotheses"]["H0"].update(qos={"latency_target_ms": 0}),
            r"hypotheses\.H0\.qos\.latency_target_ms: 0 is less than or equal",
        ),
        (
            lambda c: c["hypotheses"]["H0"].update(
                qos={"profile": "heavy", "tool": "fio", "latency_target_ms": 4}
            ),
            r"hypotheses\.H0 point users-\d+: qos\.latency_target_ms runs the builtin",
        ),
        (
            lambda c: c["hypotheses"]["H0"].update(qos={"io_scheduler": "none; reboot"}),
            r"hypotheses\.H0\.qos\.io_scheduler: 'none; reboot' does not match",
        ),
        # values that reach the workflow's command lines: no shell syntax
        (lambda c: c.update(results_dir="res x; rm -rf y #"), r"results_dir: .* does not match"),
        (lambda c: c.update(results_dir=""), r"results_dir: '' does not match"),
        (lambda c: c.update(results_dir="./"), r"results_dir: './' is the checkout or outside"),
        (lambda c: c.update(results_dir="r/../.."), r"results_dir: 'r/\.\./\.\.' is the checkout"),
        (
            lambda c: c["defaults"].update(telemetry={"devices": ["$(touch x)vda"]}),
            r"defaults\.telemetry\.devices: \['\$\(touch x\)vda'\] is not valid",
        ),
        # two values of one axis that name the same point would share its files
        (
            lambda c: c["hypotheses"]["H0"]["sweep"][0].update(values=[4, 4]),
            r"hypotheses\.H0\.sweep: values \(4,\) and \(4,\) both make point 'users-4'",
        ),
        # a secret written into the plan would travel on command lines and into run.json
        (
            lambda c: c["defaults"].update(server={"sim": {"api_key": "k3y"}}),
            r"hypotheses\.H0 \(stack A\): server\.sim\.api_key is a secret written into",
        ),
    ],
)
def test_invalid_plans_fail_naming_the_key(mutate, message):
    cfg = copy.deepcopy(BASE)
    mutate(cfg)
    with pytest.raises(PlanError, match=message):
        plan(cfg)


@pytest.mark.parametrize(
    ("hyp", "axis", "message"),
    [
        (
            "H0",
            {"key": "load.userz", "role": "concurrency", "values": [1, 4]},
            r"hypotheses\.H0\.sweep: key load\.userz \(= 1\): load: .*'userz' was unexpected",
        ),
        (
            "H0",
            {"key": "workload.context_tokenz", "role": "context", "values": [64]},
            r"hypotheses\.H0\.sweep: key workload\.context_tokenz .*'context_tokenz'",
        ),
        (
            "H0",
            {"key": "load.users", "role": "concurrency", "values": [4, 0]},
            r"hypotheses\.H0\.sweep: key load\.users \(= 0\): load\.users:",
        ),
        (
            "H6",
            {"key": "server.sim.g2_blockz", "role": "tier_capacity", "values": [16]},
            r"(?s)hypotheses\.H6 \(stack B, sweep key server\.sim\.g2_blockz\).*'g2_blockz'",
        ),
    ],
)
def test_a_sweep_key_or_value_outside_the_schema_fails_naming_it(hyp, axis, message):
    """A sweep sets its key by path: a typo must not become a new key the run ignores."""
    cfg = copy.deepcopy(BASE)
    cfg["hypotheses"][hyp]["sweep"] = [axis]
    with pytest.raises(PlanError, match=message):
        plan(cfg)


def test_a_bad_value_is_named_without_calling_the_sections_valid_keys_unknown():
    cfg = copy.deepcopy(BASE)
    cfg["defaults"]["repetitions"] = "three"
    with pytest.raises(PlanError) as err:
        plan(cfg)
    assert "defaults.repetitions" in str(err.value)
    assert "Unevaluated" not in str(err.value)


def test_the_ignored_slo_section_is_in_no_points_spec():
    """A plan's `slo` is read by no rule: in the point's spec, editing it re-measured
    every point."""
    cfg = copy.deepcopy(BASE)
    before = [r.spec_json() for r in plan(cfg).runs()]
    cfg["defaults"]["slo"] = {"ttft_ms": 900}
    assert [r.spec_json() for r in plan(cfg).runs()] == before


def test_results_dir_is_normalised():
    cfg = copy.deepcopy(BASE)
    cfg["results_dir"] = "./results_alt/"
    assert plan(cfg).results == "results_alt"


def test_a_plan_of_nested_yaml_aliases_is_refused_before_it_is_expanded(tmp_path):
    """A few hundred bytes of nested aliases stand for millions of values, which
    validation and every copy of the plan would walk."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    cfg = {**copy.deepcopy(BASE), "x": load_config(bomb)}
    with pytest.raises(PlanError, match=r"config: more than 100000 values once YAML aliases"):
        plan(cfg)


def test_unknown_hypotheses_and_stacks_are_named_with_the_valid_ones():
    p = plan()
    with pytest.raises(
        PlanError, match=r"unknown hypothesis H10: the plan has H0, H2B, H6, H7, H9$"
    ):
        p.runs("H10")
    with pytest.raises(PlanError, match=r"unknown stack Q, Z: the plan has A, B, B0, B2$"):
        p.check_names(["H0"], ["A", "Q", "Z"])
    p.check_names(["H0", "H7"], ["B0"])  # known names pass


def test_a_point_is_expected_to_take_its_phases_and_its_server_start_up():
    r = plan().run("H0", "A", "users-1", 0)
    assert r.phases_s == 1 + 1 + 2 + 1
    assert r.startup_estimate_s == STARTUP_ESTIMATE_S["sim"] > 0
    assert r.expected_s == r.phases_s + r.startup_estimate_s


def test_config_files_layer_over_config_yaml_unless_they_name_a_track(tmp_path):
    """As the Snakefile layers `--configfile`: over config/config.yaml, lists replaced."""
    default = load_config(REPO / "config/config.yaml")
    assert layered_config([], REPO) == default
    spark = layered_config([REPO / "config/spark.yaml"], REPO)
    assert spark["hypotheses"]["H0"]["stacks"] == default["hypotheses"]["H0"]["stacks"]
    assert spark["defaults"]["phases"]["load_s"] == 300  # spark.yaml's, over the default's
    assert set(spark["hypotheses"]) == set(default["hypotheses"])
    whole = tmp_path / "whole.yaml"
    whole.write_text(json.dumps({**BASE, "track": "v3"}))
    assert layered_config([whole], REPO) == {**BASE, "track": "v3"}
    missing = tmp_path / "nowhere"
    with pytest.raises(PlanError, match=r"file not found: .*nowhere/config/config\.yaml"):
        layered_config([], missing)


def test_shipped_configs_are_valid():
    p = Plan(load_config(REPO / "config/config.yaml"), base_dir=REPO)
    assert set(p.hypotheses) >= set(EVALUATORS)  # every hypothesis of the plan


def test_the_cpu_engine_plan_runs_or_declares_every_hypothesis():
    """config/vllm-cpu.yaml is a whole plan: each hypothesis is either run or declared
    not applicable with its reason, none both, none forgotten."""
    p = Plan(layered_config([REPO / "config/vllm-cpu.yaml"], REPO), base_dir=REPO)
    assert set(p.hypotheses) | set(p.not_applicable) == set(EVALUATORS)
    assert {"H0", "H2A"} <= set(p.hypotheses)
    servers = {(r.hyp, r.spec["server"]["name"]) for r in p.runs()}
    # H0 on both serving paths of the one engine; the rest on vLLM's own server
    assert {s for h, s in servers if h == "H0"} == {"vllm-cpu", "dynamo-vllm-cpu"}
    assert {s for h, s in servers if h != "H0"} == {"vllm-cpu"}


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    assert deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "e": 2}) == {
        "a": {"b": 1, "c": [2]},
        "d": 1,
        "e": 2,
    }


def test_resolve_stack_by_hand_applies_overrides():
    spec = resolve_stack(REPO / "config/stacks/sim-tiered.yaml", "B1", {"sim": {"g1_blocks": 8}})
    assert spec["sim"]["g3_blocks"] == 0 and spec["sim"]["g1_blocks"] == 8


def test_spark_plan_carries_none_of_the_demo_worlds_simulator_settings():
    """The demo plan sizes simulated tiers per hypothesis (`server.sim`), lengthens some
    windows, warms its tiered world up and cycles prompts; config/spark.yaml, layered over
    it, must not pass any of that to the real servers' points."""
    plan = Plan(layered_config([REPO / "config" / "spark.yaml"], REPO), base_dir=REPO)
    for run in plan.runs():
        assert "sim" not in run.spec["server"], (run.hyp, run.point)
        assert run.spec["phases"]["warmup_s"] == 30, (run.hyp, run.point)
        # the demo lengthens some windows (H2A, H2B, H4A, H4B, H5): on the Spark all are 300 s
        assert run.spec["phases"]["load_s"] == 300, (run.hyp, run.point)
        assert run.spec["workload"].get("prompts_per_user", 1) == 1, (run.hyp, run.point)
