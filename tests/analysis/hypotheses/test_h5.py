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


def test_short_windows_report_the_p99_slope_and_p95_decides(verdict_of, criterion):
    """Under 200 requests a window's p99 is one of its largest few requests: its slope
    is reported (info, with the reason) and p95's decides, here a flat one."""
    v = verdict_of("H5", World(sessions_knee=10**6, n_requests=150))
    p99, p95 = (criterion(v, f"slope_{q}_vs_working_set") for q in ("p99", "p95"))
    assert p99["role"] == "info" and p99["reasons"] == ["tail_p95_fewer_than_200_requests"]
    assert p95["role"] == "rule" and p95["status"] == "not supported"
