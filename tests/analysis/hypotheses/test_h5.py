"""H5: p95/p99 rise with the measured KV working set."""

from spark_harness_testkit.synthetic import World


def test_planted_working_set_effect_is_supported(verdict_of, criterion):
    v = verdict_of("H5")
    assert v["status"] == "supported"
    for q in ("p99", "p95"):
        c = criterion(v, f"slope_{q}_vs_working_set")
        assert c["status"] == "supported" and c["ci"][0] > 0
        assert c["unit"] == "ms/bytes"  # block bytes and block tokens known: bytes
    assert v["gates"]["mechanism"]["passed"] is True


def test_flat_tails_are_not_supported(verdict_of, criterion):
    v = verdict_of("H5", World(sessions_knee=10**6))
    assert criterion(v, "slope_p99_vs_working_set")["status"] == "not supported"
