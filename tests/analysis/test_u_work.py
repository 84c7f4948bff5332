"""write_u_work: the file H2A/H2B read U_work from."""

import json

import pytest

from spark_harness.analysis.thresholds import MIN_REPETITIONS
from spark_harness.analysis.u_work import UWorkError, write_u_work
from spark_harness.ingest import ingest
from spark_harness_testkit.synthetic import World, write_plan

USERS = {
    "sweep": [
        {
            "key": "load.users",
            "role": "concurrency",
            "name": "users",
            "values": [1, 2, 4, 8, 16, 32, 64],
        }
    ]
}


def _h0(tmp_path, plan_of, world):
    dirs = write_plan(plan_of({"H0": USERS}), tmp_path / "results", world)
    for (h, s), d in dirs.items():
        ingest(d, tmp_path / "ingest" / h / s)
    return tmp_path / "ingest" / "H0"


def test_u_work_file(tmp_path, plan_of):
    lost = frozenset(("H0", "A", "users-64", rep) for rep in range(MIN_REPETITIONS))
    root = _h0(tmp_path, plan_of, World(knee_users=32, fail=lost))
    write_u_work(root / "A", tmp_path / "A.json")
    u = json.loads((tmp_path / "A.json").read_text())
    # the knee at 32 needs 64 to confirm it, and 64 failed: no knee, U_work = 32
    assert u["stack"] == "A" and u["failed_points"] == ["users-64"]
    assert (u["u_work"], u["knee_found"]) == (32, False)
    assert u["reason"] == "no_knee_in_sweep:last_step_over_ratio_unconfirmed;failed_points:users-64"
    write_u_work(root / "B", tmp_path / "B.json")
    b = json.loads((tmp_path / "B.json").read_text())
    assert (b["u_work"], b["knee"], b["knee_found"], b["reason"]) == (16, 32, True, "knee_found")
    step = b["steps"][0]
    assert step["users"] == 1 and step["n_reps"] == MIN_REPETITIONS
    assert step["p50_ci"][0] <= step["p50_ms"] <= step["p50_ci"][1]
    assert step["rows"] == [["H0", "B", "users-1", rep] for rep in range(MIN_REPETITIONS)]
    assert [s["users"] for s in b["steps"]] == [1, 2, 4, 8, 16, 32, 64]


def test_u_work_needs_one_stack_with_a_users_axis(tmp_path, plan_of):
    root = _h0(tmp_path, plan_of, World())
    with pytest.raises(UWorkError, match="expected one"):
        both = tmp_path / "both"
        ingest(
            [p.parent for p in (tmp_path / "results" / "raw" / "H0").glob("*/*/r*/run.json")], both
        )
        write_u_work(both, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    assert root.exists()
