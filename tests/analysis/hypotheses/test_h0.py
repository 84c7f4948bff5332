"""H0: the U_work knee and B-vs-A p50 parity, on planted sweeps."""

import pytest

from spark_harness.analysis.axes import AxisRoleError
from spark_harness_testkit.synthetic import World

SWEEP = {
    "sweep": [
        {
            "key": "load.users",
            "role": "concurrency",
            "name": "users",
            "values": [1, 2, 4, 8, 16, 32, 64],
        }
    ]
}


def test_knee_planted_at_32_gives_u_work_16(verdict_of, criterion):
    v = verdict_of("H0", World(knee_users=32), **SWEEP)
    assert v["status"] == "supported"
    for stack in ("A", "B"):
        assert v["stacks"][stack]["u_work"] == 16
        assert v["stacks"][stack]["knee"] == 32
        knee = criterion(v, f"knee_{stack}")
        assert knee["status"] == "supported" and knee["ci"][0] > 2
    parity = criterion(v, "p50_parity_B_vs_A")
    assert parity["status"] == "supported"
    assert parity["details"]["steps"] == [1, 2, 4, 8, 16]


def test_parity_shows_each_repetitions_p50_behind_its_ratio(verdict_of, criterion):
    """The per-repetition p50s in the details are the ones the statistic averaged: a
    reader sees a repetition that settled into another pattern."""
    v = verdict_of("H0", World(knee_users=32, b_overhead=0.03), repetitions=4, **SWEEP)
    details = criterion(v, "p50_parity_B_vs_A")["details"]
    for step in details["steps"]:
        reps = details["p50_ms_by_repetition"][str(step)]
        assert len(reps["A"]) == len(reps["B"]) == 4
        ratio = (sum(reps["B"]) / 4) / (sum(reps["A"]) / 4) - 1
        assert ratio == pytest.approx(details["per_step"][str(step)], abs=1e-4)
        assert ratio == pytest.approx(0.03, abs=0.01)


def test_no_knee_before_saturation_is_inconclusive_and_u_work_is_the_largest_step(
    verdict_of, criterion
):
    """Throughput still rising at 64 users: the sweep stopped short, it refutes nothing."""
    v = verdict_of("H0", World(knee_users=10**6, saturation_users=128), **SWEEP)
    assert v["status"] == "inconclusive"
    assert v["stacks"]["A"]["u_work"] == 64
    assert v["stacks"]["A"]["knee_found"] is False
    assert v["stacks"]["A"]["saturated_at"] is None
    assert "no_knee_in_sweep:A" in v["reasons"]
    assert criterion(v, "knee_A")["status"] == "inconclusive"


def test_no_knee_past_saturation_refutes_the_knee(verdict_of, criterion):
    """Throughput flat from 16 users on (planted), p99/p50 at 1.4 everywhere: queueing
    raises every wait alike and no knee locates U_work."""
    v = verdict_of("H0", World(knee_users=10**6, saturation_users=16), **SWEEP)
    for stack in ("A", "B"):
        knee = criterion(v, f"knee_{stack}")
        assert knee["status"] == "not supported" and knee["ci"][1] < 2
        assert knee["details"]["saturated_at"] == 32  # 16 -> 32 users: no more requests/s
        assert v["stacks"][stack]["saturated_at"] == 32
    assert v["status"] == "not supported"
    assert "no_knee_in_sweep:A" in v["reasons"]


def test_a_knee_past_saturation_is_still_a_knee(verdict_of, criterion):
    v = verdict_of("H0", World(knee_users=32, saturation_users=8), **SWEEP)
    assert criterion(v, "knee_A")["status"] == "supported"
    assert v["stacks"]["A"]["saturated_at"] == 16


def test_dynamo_overhead_of_15_percent_refutes_parity(verdict_of, criterion):
    v = verdict_of("H0", World(knee_users=32, b_overhead=0.15), **SWEEP)
    assert criterion(v, "p50_parity_B_vs_A")["status"] == "not supported"
    assert v["status"] == "not supported"


def test_failed_point_is_reported_not_dropped(verdict_of):
    lost = frozenset(("H0", "A", "users-4", r) for r in range(3))
    v = verdict_of("H0", World(knee_users=32, fail=lost), **SWEEP)
    failed = {(r["stack"], r["point"], r["rep"]) for r in v["failed_runs"]}
    assert failed == {("A", "users-4", r) for r in range(3)}
    assert all(
        not r["used"] and r["excluded_reason"].startswith("run_failed") for r in v["failed_runs"]
    )
    assert v["stacks"]["A"]["failed_points"] == ["users-4"]
    assert "failed_runs_excluded" in v["reasons"]
    assert "point_without_usable_runs" in v["reasons"]
    assert v["status"] == "inconclusive"  # a point without data: too few repetitions


def test_retried_point_counts_once_and_its_failed_attempt_is_listed(verdict_of):
    retried = frozenset({("H0", "B", "users-8", 1)})
    v = verdict_of("H0", World(knee_users=32, retry=retried), **SWEEP)
    assert v["status"] == "supported"  # the rerun completed the point
    assert [(r["stack"], r["point"], r["rep"]) for r in v["failed_runs"]] == [("B", "users-8", 1)]
    assert "failed_runs_excluded" in v["reasons"]


def test_single_repetition_is_inconclusive(verdict_of):
    v = verdict_of("H0", World(knee_users=32), repetitions=1, **SWEEP)
    assert v["status"] == "inconclusive"
    assert "fewer_than_3_repetitions" in v["reasons"]


def test_stack_without_any_usable_run(verdict_of, criterion):
    lost = frozenset(("H0", "B", f"users-{u}", r) for u in (1, 2, 4, 8, 16) for r in range(3))
    v = verdict_of("H0", World(fail=lost))
    assert criterion(v, "knee_B")["reasons"] == ["no_usable_runs:B"]
    assert v["status"] == "inconclusive"
    assert len(v["failed_runs"]) == 15


def test_every_run_failed_is_invalid_and_reported(verdict_of):
    lost = frozenset(
        ("H0", s, f"users-{u}", r) for s in "AB" for u in (1, 2, 4, 8, 16) for r in range(3)
    )
    v = verdict_of("H0", World(fail=lost))
    assert v["status"] == "invalid"
    assert "no_usable_runs" in v["reasons"] and "failed_runs_excluded" in v["reasons"]
    assert len(v["failed_runs"]) == 30


def test_prefix_reuse_makes_parity_inconclusive(verdict_of, criterion):
    """Parity measures serving overhead only without KV reuse: B reusing the prompts
    (no per-request nonce) made the old rule compare reuse, not overhead."""
    v = verdict_of("H0", World(knee_users=32, h0_prefix_reuse=True), **SWEEP)
    c = criterion(v, "p50_parity_B_vs_A")
    assert (c["status"], c["reasons"]) == ("inconclusive", ["prefix_reuse_confounds_parity"])
    assert c["details"]["cached_tokens_per_stack"]["A"] == 0
    assert c["details"]["cached_tokens_per_stack"]["B"] > 0
    assert v["status"] == "inconclusive"


def test_plan_without_a_concurrency_axis_names_hypothesis_and_role(verdict_of):
    sweep = [{"key": "load.users", "role": "context", "name": "users", "values": [1, 2, 4]}]
    with pytest.raises(AxisRoleError, match=r"H0: .*role 'concurrency'"):
        verdict_of("H0", sweep=sweep)
