"""The SLURM profile against the real workflow's DAG, without a cluster (dry runs).

A profile's `set-resources` silently ignores rules that do not exist, so a renamed rule
would quietly lose its resources (and a measurement its exclusive node): these tests
tie the profile to the rules the workflow really has.
"""

from __future__ import annotations

import pytest
import yaml

from tests.cluster.slurm import POINT_RULES, PROFILE, dry_run_jobs, run_snakemake
from tests.conftest import copy_workflow

pytest.importorskip("snakemake_executor_plugin_slurm", reason="needs the '.[cluster]' extra")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = copy_workflow(tmp_path_factory.mktemp("wf"))
    done = run_snakemake(root, "--workflow-profile", str(PROFILE), "-n", "H_all", timeout=300)
    assert done.returncode == 0, done.stdout[-4000:]
    return done.stdout


@pytest.fixture(scope="module")
def profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def test_each_point_is_one_group_of_server_sidecar_and_load(dry_run):
    groups, single, _ = dry_run_jobs(dry_run)
    assert groups, "no group jobs: service() no longer groups a point's jobs"
    for g in groups:
        assert sorted(g.rules) == sorted(POINT_RULES)
        # one point and repetition per group: the three jobs share every wildcard
        wildcards = list(g.rules.values())
        assert all(w == wildcards[0] for w in wildcards), wildcards
    points = {tuple(sorted(g.rules["loadgen"].items())) for g in groups}
    assert len(points) == len(groups)
    assert not set(POINT_RULES) & set(single), "a point's job runs outside its group"


@pytest.mark.parametrize("name", ["slurm", "kubernetes"])
def test_profile_sets_resources_for_exactly_the_rules_that_run(dry_run, name):
    profile = yaml.safe_load((PROFILE.parents[1] / name / "config.yaml").read_text())
    groups, single, _ = dry_run_jobs(dry_run)
    action_rules = {r for g in groups for r in g.rules} | (set(single) - {"H_all"})
    # figures_<hyp>, compare_<chart>: one rule per hypothesis or chart, declaring its
    # small resources itself
    assert set(profile["set-resources"]) == {
        r for r in action_rules if not r.startswith(("figures_", "compare_"))
    }
    # string resources must be equal on all rules of a group, or Snakemake refuses it
    point = [profile["set-resources"][r] for r in POINT_RULES]
    for key in {k for p in point for k, v in p.items() if isinstance(v, str)}:
        assert len({p.get(key) for p in point}) == 1, key


def test_point_group_asks_for_one_whole_node(profile):
    res = profile["set-resources"]
    point = [res[r] for r in POINT_RULES]
    assert {p["slurm_extra"] for p in point} == {"'--exclusive'"}
    # a group's request is the sum over its concurrently running jobs
    assert sum(p["cpus_per_task"] for p in point) >= 2
    assert all(p["mem_mb"] == 0 for p in point), "--mem would cap the exclusive node"
    assert max(p["runtime"] for p in point) == res["loadgen"]["runtime"] > 0


def test_analysis_jobs_are_small_and_never_exclusive(profile):
    for rule, res in profile["set-resources"].items():
        if rule in POINT_RULES:
            continue
        assert res["cpus_per_task"] == 1, rule
        assert 0 < res["mem_mb"] <= 8000, rule
        assert 0 < res["runtime"] <= 60, rule
        assert "exclusive" not in res.get("slurm_extra", ""), rule


def test_profile_replaces_the_default_one(profile):
    """Used as --workflow-profile it replaces workflow/profiles/default: keep its choices."""
    default = yaml.safe_load((PROFILE.parents[1] / "default" / "config.yaml").read_text())
    for key in set(default) - {"resources"}:
        assert profile[key] == default[key], key
    slots = dict(r.split("=") for r in profile["resources"])
    assert int(slots["bench_slot"]) > 1, "bench_slot=1 would measure one point at a time"
