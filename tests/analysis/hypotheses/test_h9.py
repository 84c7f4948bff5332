"""H9: paired AB/BA replay TTFT per mode, with the disk-onboard mechanism gate."""

import math

import numpy as np
import pytest

from spark_harness.analysis.hypotheses.h9 import Pairs
from spark_harness_testkit.synthetic import World


def test_rehydration_from_disk_beats_recompute(verdict_of, criterion):
    v = verdict_of("H9", repetitions=4)  # a t CI per run order needs two of each
    assert v["status"] == "supported"
    d = criterion(v, "replay_ttft_b2_minus_b0")
    # planted: recompute 4 x 0.02 ms x 1024 tokens; disk reload a quarter of it
    assert abs(d["value"] - (-0.75 * 4 * 0.02 * 1024)) < 3
    assert d["details"]["pairs"] == [0, 1, 2, 3]
    assert v["gates"]["order_effect"]["passed"] is True


def test_b2_without_disk_onboards_is_invalid(verdict_of):
    v = verdict_of("H9", World(g3_counter_scale=0.0))
    assert v["status"] == "invalid"
    assert "b2_no_disk_onboards" in v["reasons"]


def test_order_effect_makes_it_inconclusive(verdict_of):
    v = verdict_of("H9", World(odd_rep_ms=30.0), repetitions=4)
    assert v["gates"]["order_effect"]["passed"] is False
    assert v["status"] == "inconclusive"
    assert "order_effect" in v["reasons"]


def test_b1_with_disk_onboards_is_invalid(verdict_of):
    v = verdict_of("H9", World(b1_disk_onboards=True))
    assert v["status"] == "invalid"
    assert v["gates"]["b1_no_disk"]["reasons"] == ["b1_disk_onboards"]


def test_b1_without_g3_counters_is_unknown_not_zero(verdict_of):
    """The old gate read B1's missing counters as 0 disk onboards and passed."""
    v = verdict_of("H9", World(b1_missing_counters=True))
    gate = v["gates"]["b1_no_disk"]
    assert (gate["passed"], gate["effect"]) == (False, "inconclusive")
    assert v["status"] == "inconclusive" and "b1_disk_onboards_unknown" in v["reasons"]


def test_b1_declared_without_g3_has_no_disk_to_onboard_from(verdict_of):
    """vLLM's host-only offloading exports no G3 series because it has no G3: a B1 whose
    stack declares its tiers (kv_tiers) without G3 passes the gate, per run, and says
    why; B2's own counters still decide its gate."""
    v = verdict_of("H9", World(b1_missing_counters=True, declared_tiers=True))
    gate = v["gates"]["b1_no_disk"]
    assert gate["passed"] is True and gate["value"] is None
    assert {r[-1] for r in gate["details"]["per_run"]} == {"declared without G3"}
    assert v["status"] == "supported"


def test_b1_counters_win_over_its_declared_tiers(verdict_of):
    v = verdict_of("H9", World(b1_disk_onboards=True, declared_tiers=True))
    gate = v["gates"]["b1_no_disk"]
    assert (gate["passed"], gate["reasons"]) == (False, ["b1_disk_onboards"])
    assert v["status"] == "invalid"
    assert {r[-1] for r in gate["details"]["per_run"]} == {"counted"}


def test_one_b2_run_without_disk_onboards_is_invalid(verdict_of):
    v = verdict_of("H9", World(zero_g3_runs=frozenset({("H9", "B2", "base", 1)})))
    assert v["status"] == "invalid"
    failing = v["gates"]["mechanism"]["details"]["failing_runs"]
    assert [r[:4] for r in failing] == [["H9", "B2", "base", 1]]


def test_paired_mean_of_three_repetitions_is_the_one_sample_t_interval():
    """Two repetitions in the listed order and one reversed (the demo's three) cannot be
    balanced over the orders: the effect is the paired mean and its CI the one-sample
    t-interval on the per-repetition differences. One resampled run's replicate, used
    before, widened it (upper end 3.5 for 1.96 here)."""
    pairs = Pairs.__new__(Pairs)
    pairs.means = {"B2": np.array([10.0, 12.0, 17.0]), "B0": np.array([20.0, 20.0, 20.0])}
    pairs.order = np.array(["listed", "reversed", "listed"])
    effect, order = pairs.difference("B2", "B0")
    d = pairs.means["B2"] - pairs.means["B0"]
    half = 4.302652729911275 * d.std(ddof=1) / math.sqrt(3)  # t_{0.975, 2}
    assert effect.value == pytest.approx(-7.0)
    assert effect.ci == pytest.approx((d.mean() - half, d.mean() + half), abs=0.05 * half)
    assert order.ci is None  # no order effect without two repetitions of each order
