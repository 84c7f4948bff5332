"""H3: OS memory counters explain A's p99, KV tier counters explain B's better."""

from spark_harness_testkit.synthetic import World


def test_planted_counters_are_supported(verdict_of, criterion):
    v = verdict_of("H3")
    assert v["status"] == "supported"
    assert criterion(v, "os_counters_explain_A")["ci"][0] > 0
    assert criterion(v, "kv_counters_explain_B_better")["ci"][0] > 0
    assert {r["hyp"] for r in v["runs"]} == {"H2A", "H2B"}
    slope = criterion(v, "os_counters_explain_A")["details"]["slope_os_memory_on_kv_bytes"]
    assert slope["ci"][0] < 1.0 < slope["ci"][1]  # every KV byte is an OS byte on A


def test_other_processes_memory_does_not_count_as_a_kv(verdict_of, criterion):
    """Other processes' memory moves between runs (planted: SD 800 MB per run, beside
    268 MB of KV between H2A's contexts) but is the same in a run's idle phase and its
    window: OS memory in use is the run's idle minus its window, so it cancels."""
    quiet = criterion(verdict_of("H3", World(rep_noise=0.01)), "os_counters_explain_A")
    v = verdict_of("H3", World(other_mem_jitter_bytes=800e6, rep_noise=0.01))
    c = criterion(v, "os_counters_explain_A")
    assert c["status"] == "supported" and abs(c["value"] - quiet["value"]) < 0.01
    assert v["status"] == "supported"


def test_memory_released_along_the_sweep_is_not_taken_for_a_kv(verdict_of, criterion):
    """A keeps no KV in the OS's memory, while other memory in use follows the sweep
    (planted: 0.5 MB per context token, the same in idle and window; an oracle run
    released memory while the plan ran its longer contexts first). The window's level
    alone gave a false "supported" there; the run's own idle minus its window is flat."""
    v = verdict_of("H3", World(os_sees_a=0.0, other_mem_per_ctx_token=0.5e6))
    c = criterion(v, "os_counters_explain_A")
    assert c["status"] == "not supported" and "os_memory_flat:os_counters_explain_A" in c["reasons"]
    assert v["status"] == "not supported"


def test_os_memory_flat_against_a_kv_refutes(verdict_of, criterion):
    """A's pool took its memory at start-up (planted: the OS sees none of A's KV): OS
    memory is flat while the KV held and p99 grow, so OS counters cannot explain A.
    r(p99, OS memory) is noise there and its CI spans 0 whatever the truth (the old
    rule left H3 inconclusive for ever); the slope on KV bytes refutes."""
    v = verdict_of("H3", World(os_sees_a=0.0))
    c = criterion(v, "os_counters_explain_A")
    assert c["status"] == "not supported" and "os_memory_flat:os_counters_explain_A" in c["reasons"]
    assert c["ci"][0] > -0.5 and c["ci"][1] < 0.5
    assert criterion(v, "kv_counters_explain_B_better")["status"] == "supported"
    assert v["status"] == "not supported"


def test_without_g1_size_r_alone_decides(verdict_of, criterion):
    """A stack that exports no G1 size (vLLM): no KV bytes, so no slope; flat OS memory
    is then undecided (r of noise), and the planted world still supported by r."""
    blind = verdict_of("H3", World(os_sees_a=0.0, g1_size_exported=False))
    c = criterion(blind, "os_counters_explain_A")
    assert c["status"] == "inconclusive" and c["details"]["slope_os_memory_on_kv_bytes"] == (
        "no_kv_pool_bytes"
    )
    assert blind["status"] == "inconclusive"
    assert verdict_of("H3", World(g1_size_exported=False))["status"] == "supported"


def test_os_counters_against_a_refute(verdict_of, criterion):
    v = verdict_of("H3", World(os_sees_a=-1.0))
    assert criterion(v, "os_counters_explain_A")["status"] == "not supported"
    assert v["status"] == "not supported"


def test_b_half_os_counters_as_good_as_kv_refutes(verdict_of, criterion):
    """The second half: on B the KV tier counters must explain p99 better than the OS
    counters. Where B's KV also sits in memory the OS sees, and the tier counters do not
    follow p99, OS counters explain B better: not supported on that half alone."""
    v = verdict_of("H3", World(os_sees_b=1.0, b_onboards_untied=True))
    assert criterion(v, "os_counters_explain_A")["status"] == "supported"
    b = criterion(v, "kv_counters_explain_B_better")
    assert b["status"] == "not supported" and b["ci"][1] < 0
    assert v["status"] == "not supported"


def test_b_half_reads_blocks_per_request_when_the_g3_path_is_saturated(verdict_of, criterion):
    """A saturated G3 path onboards at its own pace at every context: the rate is flat
    while p99 grows with the blocks each request must fetch. KV telemetry per request
    explains p99 (per second it explained nothing and the half stayed undecided)."""
    v = verdict_of("H3", World(g3_path_saturated=True, rep_noise=0.02))
    b = criterion(v, "kv_counters_explain_B_better")
    assert b["status"] == "supported" and b["ci"][0] > 0
    assert v["status"] == "supported"
