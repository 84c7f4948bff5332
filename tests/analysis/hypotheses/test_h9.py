"""H9: paired AB/BA replay TTFT per mode, with the disk-onboard mechanism gate."""

from spark_harness.analysis.synthetic import World


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
