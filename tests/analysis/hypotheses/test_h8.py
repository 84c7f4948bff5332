"""H8A/H8B: iowait and read await against p99; flat iowait supports A and refutes B."""

from spark_harness_testkit.synthetic import World
from tests.analysis.conftest import evaluate


def test_iowait_uncorrelated_with_p99_supports_h8a(verdict_of, criterion):
    # fio's own I/O moves A's iowait, A's p99 does not follow it; "near 0" at |r| < 0.3
    # with a 95 % CI over runs needs about 50 runs (Fisher-z half-width 1.96 / sqrt(n - 4)
    # for a correlation given the source: 56 runs here)
    v = verdict_of("H8A", repetitions=14)
    c = criterion(v, "iowait_vs_p99_near_zero")
    assert c["ci"][0] > -0.3 and c["ci"][1] < 0.3
    assert v["status"] == "supported"


def test_source_levels_alone_make_no_correlation(plan_of, criterion, tmp_path):
    """H4A at 128 tokens has a lower p99 than any of H2A's contexts, and fio's iowait:
    pooled, the runs correlate iowait with p99 negatively though neither sweep moved
    the two together. The rule's r is the one given the source: near 0, never refuted."""
    h4a = {"kind": "fixed_context", "context_tokens": 128, "output_tokens": 16, "nonce": True}
    h2a = {
        "key": "workload.context_tokens",
        "role": "context",
        "name": "ctx",
        "values": [1024, 2048],
    }
    plan = plan_of({"H8A": {}, "H2A": {"sweep": [h2a]}, "H4A": {"workload": h4a}, "H0": {}}, 14)
    world = World(per_token_ms=0.1, qos_iowait_a={"none": 0.0, "heavy": 30.0})
    v = evaluate(tmp_path, plan, "H8A", world)
    c = criterion(v, "iowait_vs_p99_near_zero")
    pooled = c["details"]["pooled_pearson"]
    assert pooled["value"] < -0.4 and pooled["ci"][0] < -0.3  # pooled: never supported
    assert abs(c["value"]) < 0.1
    assert c["status"] == "supported" and v["status"] == "supported"


def test_flat_iowait_alone_does_not_pass_h8a(verdict_of, criterion):
    """The old rule passed on flat iowait; flat iowait gives a correlation of noise, whose
    CI is too wide to show it near 0: inconclusive, flatness reported."""
    v = verdict_of("H8A", World(qos_iowait_a={}), repetitions=3)
    c = criterion(v, "iowait_vs_p99_near_zero")
    assert c["details"]["iowait_flat"] is True and "iowait_flat" in c["reasons"]
    assert c["status"] == "inconclusive"
    assert v["status"] == "inconclusive"


def test_iowait_following_p99_refutes_h8a(verdict_of, criterion):
    v = verdict_of("H8A", World(iowait_a_per_ms=0.1), repetitions=3)
    assert criterion(v, "iowait_vs_p99_near_zero")["ci"][0] > 0.3
    assert v["status"] == "not supported"


def test_flat_iowait_refutes_h8b(verdict_of, criterion):
    v = verdict_of("H8B", World(iowait_per_share=0.0))
    c = criterion(v, "iowait_tracks_p99")
    assert c["status"] == "not supported"
    assert "iowait_flat:iowait_tracks_p99" in c["reasons"]
    assert v["status"] == "not supported"


def test_iowait_tracking_nvme_supports_h8b(verdict_of, criterion):
    # given the source, read await's rise with H2B's context (0.27 -> 0.5 ms while p99
    # quadruples) dilutes its r to ~0.3: ten repetitions for a CI above 0
    v = verdict_of("H8B", repetitions=10)
    assert v["status"] == "supported"
    assert criterion(v, "iowait_tracks_p99")["ci"][0] > 0
    assert criterion(v, "await_tracks_p99")["ci"][0] > 0
    unused = [r for r in v["runs"] if not r["used"]]
    assert unused and all(r["excluded_reason"] == "nvme_not_engaged" for r in unused)


def test_h8b_without_engaged_runs_is_invalid(verdict_of):
    v = verdict_of("H8B", World(g3_counter_scale=0.0))
    assert v["status"] == "invalid"
    assert "no_g3_onboards" in v["reasons"]
