"""The U_work knee, the collapse point and the storage knee, as docs/PLAN.md defines them."""

import math

from spark_harness.analysis import knee

USERS = [1, 2, 4, 8, 16, 32, 64]


def test_knee_at_32_gives_u_work_16():
    ratios = [1.3, 1.4, 1.3, 1.5, 1.6, 2.5, 3.0]
    assert knee.queue_knee(ratios) == 5
    assert knee.u_work(USERS, ratios) == (16, 32, "knee_found")


def test_a_single_step_over_the_ratio_is_not_a_knee():
    assert knee.queue_knee([1.3, 2.5, 1.5, 1.4]) is None
    assert knee.queue_knee([1.3, 2.5, 1.5, 2.4, 2.2]) == 3


def test_no_knee_gives_the_largest_step_and_says_so():
    assert knee.u_work(USERS, [1.2] * 7) == (64, None, "no_knee_in_sweep")
    u, k, why = knee.u_work(USERS, [1.2] * 6 + [2.5])
    assert (u, k) == (64, None) and why.endswith("last_step_over_ratio_unconfirmed")


def test_knee_at_the_first_step():
    assert knee.u_work([1, 2, 4], [2.5, 3.0, 3.0]) == (1, 1, "knee_at_first_step")


def test_ratio_exactly_two_is_not_over():
    assert knee.queue_knee([2.0, 2.0, 2.0]) is None
    assert knee.queue_knee([math.nan, 2.1, 2.1]) == 1


def test_collapse_conditions():
    offered = [1, 2, 4, 8]
    ok = [100.0] * 4
    assert knee.collapse(offered, ok, [0.0] * 4, [10.0, 20.0, 40.0, 60.0]) == (None, "")
    assert knee.collapse(offered, [100, 200, 1200, 1500], [0.0] * 4, [1, 2, 3, 4]) == (
        2,
        "p99_over_1000ms",
    )
    assert knee.collapse(offered, ok, [0, 0, 0.02, 0], [1, 2, 3, 4]) == (2, "errors_over_1pct")
    assert knee.collapse(offered, ok, [0.0] * 4, [10, 20, 18, 17]) == (2, "throughput_falls")
    # a 3 % dip is the noise of a saturated closed loop, not a fall
    assert knee.collapse(offered, ok, [0.0] * 4, [10, 20, 19.4, 19.5]) == (None, "")


def test_storage_knee_first_share_at_half():
    assert knee.storage_knee([0.0, 0.2, 0.5, 0.7]) == 2
    assert knee.storage_knee([0.1, 0.49]) is None


def test_storage_knee_without_fetch_latency_decides_on_the_ci_lower_bound():
    # per step: the lower CI bound of min(reads/idle, await/idle, p95/p95 at step 0)
    assert knee.storage_knee_without_fetch([1.0, 1.2, 1.6, 2.5]) == 2
    # a point estimate of 1.7 whose CI reaches down to 1.4 is no knee
    assert knee.storage_knee_without_fetch([1.0, 1.4, 1.45]) is None
    assert knee.storage_knee_without_fetch([float("nan"), 1.51]) == 1


def test_saturation_is_the_first_step_that_adds_users_but_not_10_percent_throughput():
    users = [1, 2, 4, 8, 16]
    assert knee.saturation(users, [10, 20, 40, 43, 44]) == 3  # 4 -> 8 users: +7.5 %
    assert knee.saturation(users, [10, 20, 40, 80, 160]) is None
    assert knee.saturation(users, [10, 20, float("nan"), 80, 160]) is None  # unknown is not flat
    assert knee.saturation([4, 4], [10, 10]) is None  # no more users: not a saturation step
