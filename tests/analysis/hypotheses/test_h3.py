"""H3: OS memory counters explain A's p99, KV tier counters explain B's better."""

from spark_harness_testkit.synthetic import World


def test_planted_counters_are_supported(verdict_of, criterion):
    v = verdict_of("H3")
    assert v["status"] == "supported"
    assert criterion(v, "os_counters_explain_A")["ci"][0] > 0
    assert criterion(v, "kv_counters_explain_B_better")["ci"][0] > 0
    assert {r["hyp"] for r in v["runs"]} == {"H2A", "H2B"}


def test_os_counters_blind_to_a_are_not_supported(verdict_of, criterion):
    v = verdict_of("H3", World(kv_bytes_per_token=0.0))
    assert criterion(v, "os_counters_explain_A")["status"] != "supported"
    assert v["status"] != "supported"
