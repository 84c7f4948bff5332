"""H9: paired AB/BA replay TTFT per mode, with the disk-onboard mechanism gate."""

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


def test_one_b2_run_without_disk_onboards_is_invalid(verdict_of):
    v = verdict_of("H9", World(zero_g3_runs=frozenset({("H9", "B2", "base", 1)})))
    assert v["status"] == "invalid"
    failing = v["gates"]["mechanism"]["details"]["failing_runs"]
    assert [r[:4] for r in failing] == [["H9", "B2", "base", 1]]
