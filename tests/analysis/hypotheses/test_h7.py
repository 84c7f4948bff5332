"""H7: G3 onboards x block bytes predict device reads; p99 follows G3 fetch p95."""

from spark_harness_testkit.synthetic import World


def test_planted_prediction_is_supported(verdict_of, criterion):
    v = verdict_of("H7")
    assert v["status"] == "supported"
    ratio = criterion(v, "read_bytes_ratio")
    assert 0.9 < ratio["value"] < 1.2  # observed = predicted (+ idle noise)
    assert criterion(v, "read_bytes_r2")["ci"][0] >= 0.8
    assert criterion(v, "p99_vs_g3_fetch_p95")["ci"][0] > 0
    assert {r["hyp"] for r in v["runs"]} == {"H2B", "H4B"}


def test_reads_three_times_the_prediction_are_not_supported(verdict_of, criterion):
    v = verdict_of("H7", World(device_read_factor=3.0))
    assert criterion(v, "read_bytes_ratio")["status"] == "not supported"
    assert v["status"] == "not supported"
