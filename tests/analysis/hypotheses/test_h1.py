"""H1: cold adapters raise TTFT, explained by adapter bytes read; no KV tier traffic."""

from spark_harness.analysis.synthetic import World


def test_planted_cold_excess_with_bytes_read_is_supported(verdict_of, criterion):
    v = verdict_of("H1")
    assert v["status"] == "supported"
    assert criterion(v, "cold_p99_excess")["ci"][0] > 0
    bytes_read = criterion(v, "cold_bytes_read")
    assert bytes_read["details"]["counter"] == "server_read_bytes"
    assert abs(bytes_read["value"] - 50e6) < 1e5  # planted: 50 MB more read cold
    assert "fig_ttft_cold_vs_warm.csv" in v["tables"]


def test_no_cold_effect_is_not_supported(verdict_of, criterion):
    v = verdict_of("H1", World(cold_tail=1.0, cold_read_bytes=0.0))
    assert v["status"] in ("not supported", "inconclusive")
    assert criterion(v, "cold_p99_excess")["status"] != "supported"
    assert criterion(v, "cold_bytes_read")["status"] != "supported"


def test_small_effect_with_a_wide_ci_is_inconclusive(verdict_of, criterion):
    v = verdict_of("H1", World(cold_tail=1.005))  # 3 % is resolved by 3 repetitions
    excess = criterion(v, "cold_p99_excess")
    assert excess["ci"][0] < 0 < excess["ci"][1]
    assert v["gates"]["cov_p99"]["passed"] is True  # not the CoV gate: the CI itself
    assert v["status"] == "inconclusive"
    assert v["reasons"] == ["ci_spans_threshold:cold_p99_excess"]
