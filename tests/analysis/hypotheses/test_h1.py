"""H1: cold adapters raise TTFT, explained by adapter bytes read; no KV tier traffic."""

from spark_harness_testkit.synthetic import World


def test_planted_cold_excess_with_bytes_read_is_supported(verdict_of, criterion):
    v = verdict_of("H1")
    assert v["status"] == "supported"
    assert criterion(v, "cold_p99_excess")["ci"][0] > 0.10  # planted: p99 x 1.6 cold
    bytes_read = criterion(v, "cold_bytes_read")
    assert bytes_read["details"]["counter"] == "server_read_bytes"
    assert abs(bytes_read["value"] - 50e6) < 1e5  # planted: 50 MB more read cold
    assert "fig_ttft_cold_vs_warm.csv" in v["tables"]


def test_no_cold_effect_is_not_supported(verdict_of, criterion):
    v = verdict_of("H1", World(cold_tail=1.0, cold_read_bytes=0.0))
    excess = criterion(v, "cold_p99_excess")
    assert excess["ci"][0] < 0 < excess["ci"][1]  # no excess at all ...
    assert excess["status"] == "not supported"  # ... is certainly below a material one
    assert criterion(v, "cold_bytes_read")["status"] == "not supported"  # exactly 0 more
    assert v["status"] == "not supported"


def test_an_excess_below_ten_percent_is_not_a_raise(verdict_of, criterion):
    """Small adapters load in a fraction of a request's time: a cold excess that is real
    (CI above 0) but below MATERIAL_P99_CHANGE refutes "cold adapters raise TTFT"."""
    v = verdict_of("H1", World(cold_tail=1.03))
    excess = criterion(v, "cold_p99_excess")
    assert excess["ci"][0] > 0 and excess["ci"][1] < 0.10
    assert excess["status"] == "not supported" and v["status"] == "not supported"
    assert excess["details"]["tail_excess_ms"]["ci"][0] > 0  # the absolute excess, reported


def test_a_cold_system_is_not_cold_adapters(verdict_of, criterion):
    """Tiny adapters and a page-cache drop that makes other processes re-read 12 MB: the
    cold window is slower, and the server did read its adapters (a few kB), but the
    excess is not explained by adapter bytes. The old rule (bytes cold - warm > 0)
    supported H1 here; the server's share of the cold reads refutes it."""
    v = verdict_of("H1", World(cold_read_bytes=2e4, cold_system_read_bytes=12e6))
    assert criterion(v, "cold_p99_excess")["status"] == "supported"
    assert criterion(v, "cold_bytes_read")["status"] == "supported"
    share = criterion(v, "cold_reads_are_the_servers")
    assert share["ci"][1] < 0.01 and share["status"] == "not supported"
    assert v["status"] == "not supported"
    planted = verdict_of("H1")  # 50 MB of adapters, nothing else read
    assert criterion(planted, "cold_reads_are_the_servers")["ci"][0] > 0.9


def test_without_per_process_bytes_the_share_is_missing_not_zero(verdict_of, criterion):
    v = verdict_of("H1", World(server_io=False))
    share = criterion(v, "cold_reads_are_the_servers")
    assert (share["status"], share["reasons"]) == ("inconclusive", ["no_server_read_bytes"])
    assert criterion(v, "cold_bytes_read")["details"]["counter"] == "read_bytes"
    assert v["status"] == "inconclusive"


def test_tier_traffic_on_a_refutes_h1(verdict_of, criterion):
    v = verdict_of("H1", World(a_tier_onboards=40.0))
    c = criterion(v, "no_kv_tier_traffic")
    assert c["status"] == "not supported" and 35 < c["value"] <= 40  # interpolated in time
    assert v["status"] == "not supported"


def test_missing_tier_counters_are_not_zero_traffic(verdict_of, criterion):
    """The old rule summed the counters it found (none: 0) and passed. A stack with a G3
    directory and no tier counters gives missing evidence: inconclusive; a stack without
    any tier below G1 gets the criterion reported only."""
    v = verdict_of("H1", World(kv_telemetry=False, a_g3_dir=True))
    c = criterion(v, "no_kv_tier_traffic")
    assert (c["status"], c["reasons"], c["role"]) == (
        "inconclusive",
        ["no_kv_tier_telemetry"],
        "rule",
    )
    assert v["status"] == "inconclusive"
    v = verdict_of("H1", World(spark=True))
    c = criterion(v, "no_kv_tier_traffic")
    assert (c["reasons"], c["role"]) == (["stack_without_kv_tiers"], "info")
    assert v["status"] == "supported"


def test_an_excess_whose_ci_spans_ten_percent_is_inconclusive(verdict_of, criterion):
    v = verdict_of("H1", World(cold_tail=1.1))
    excess = criterion(v, "cold_p99_excess")
    assert excess["ci"][0] < 0.10 < excess["ci"][1]
    assert v["gates"]["cov_p99"]["passed"] is True  # not the CoV gate: the CI itself
    assert v["status"] == "inconclusive"
    assert v["reasons"] == ["ci_spans_threshold:cold_p99_excess"]
