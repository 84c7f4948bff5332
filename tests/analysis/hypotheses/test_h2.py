"""H2A (no KV storage traffic on A) and H2B (a storage knee on B), on planted sweeps."""

import pytest

from spark_harness_testkit.synthetic import World

CTX = {
    "sweep": [
        {
            "key": "workload.context_tokens",
            "role": "context",
            "name": "ctx",
            "values": [256, 512, 1024, 2048],
        }
    ]
}


def test_h2a_reads_stay_idle(verdict_of, criterion):
    v = verdict_of("H2A", **CTX)
    assert v["status"] == "supported"
    assert criterion(v, "device_reads_vs_idle")["ci"][1] < 0.10
    assert criterion(v, "p99_growth")["value"] > 1  # reported, not gated


def test_h2a_stray_reads_below_the_idle_floor_are_idle(verdict_of, criterion):
    """60 kB/s over an idle device is the OS and its neighbours, not KV traffic (the
    floor was 64 kB/s, where that counted as a 94 % rise); 400 kB/s is not idle."""
    assert verdict_of("H2A", World(a_read_kbps=60.0), **CTX)["status"] == "supported"
    v = verdict_of("H2A", World(a_read_kbps=400.0), **CTX)
    assert v["status"] == "not supported"
    assert criterion(v, "device_reads_vs_idle")["ci"][0] > 0.10


def test_planted_storage_knee_is_found_at_its_context(verdict_of, criterion):
    v = verdict_of("H2B", World(storage_knee_ctx=1024), **CTX)
    assert v["status"] == "supported"
    knee = criterion(v, "storage_knee")
    assert knee["details"]["knee_point"] == "ctx-1024"
    assert knee["details"]["method"] == "fetch_latency"
    assert abs(knee["value"] - 0.6) < 0.05  # planted fetch share at the knee
    assert criterion(v, "g3_hit_share_at_knee")["ci"][0] >= 0.2
    assert v["stacks"]["B"]["storage_knee"] == "ctx-1024"


def test_storage_knee_moves_with_the_plant(verdict_of, criterion):
    v = verdict_of("H2B", World(storage_knee_ctx=2048), **CTX)
    assert criterion(v, "storage_knee")["details"]["knee_point"] == "ctx-2048"


def test_no_storage_knee_is_not_supported(verdict_of, criterion):
    v = verdict_of("H2B", World(storage_knee_ctx=10**6), **CTX)
    knee = criterion(v, "storage_knee")
    assert knee["status"] == "not supported"
    assert "no_storage_knee_in_sweep" in knee["reasons"]
    assert v["status"] == "not supported"


def test_missing_kv_tier_telemetry_is_inconclusive_not_zero(verdict_of):
    v = verdict_of("H2B", World(kv_telemetry=False), **CTX)
    assert v["status"] == "inconclusive"
    assert "no_kv_tier_telemetry" in v["reasons"]
    gate = v["gates"]["mechanism"]
    assert (gate["passed"], gate["effect"]) == (False, "inconclusive")


def test_h2a_without_g3_counters_is_missing_not_zero(verdict_of, criterion):
    """The old rule read a missing G3 counter as 0 onboards and passed; now the counter
    is missing evidence: inconclusive on a stack that has a G3 directory."""
    v = verdict_of("H2A", World(kv_telemetry=False), **CTX)
    c = criterion(v, "no_g3_traffic")
    # stack A of the demo has no G3 directory: the criterion is reported, not decisive
    assert (c["status"], c["reasons"], c["role"]) == (
        "inconclusive",
        ["stack_without_kv_tiers"],
        "info",
    )
    assert v["status"] == "supported"


def test_mechanism_is_checked_in_every_run_at_and_beyond_the_knee(verdict_of):
    """One run without G3 onboards fails the gate even though the summed onboards of the
    other runs are large (the old gate summed over runs and passed)."""
    v = verdict_of(
        "H2B",
        World(storage_knee_ctx=1024, zero_g3_runs=frozenset({("H2B", "B", "ctx-2048", 1)})),
        **CTX,
    )
    assert v["status"] == "invalid"
    gate = v["gates"]["mechanism"]
    assert gate["reasons"] == ["no_g3_offloads", "no_g3_onboards"]
    assert [r[:4] for r in gate["details"]["failing_runs"]] == [["H2B", "B", "ctx-2048", 1]]


def test_fallback_knee_without_fetch_latency_decides_on_cis(verdict_of, criterion):
    """Without a G3 fetch latency (KVBM), the knee is where the CI of the smallest of the
    three ratios lies above 1.5."""
    v = verdict_of("H2B", World(spark=True, storage_knee_ctx=1024), **CTX)
    knee = criterion(v, "storage_knee")
    assert knee["details"]["method"] == "device_counters"
    assert knee["status"] == "supported" and knee["ci"][0] > 1.5
    assert v["status"] == "supported"


def test_zero_onboards_and_offloads_are_invalid(verdict_of):
    v = verdict_of("H2B", World(g3_counter_scale=0.0), **CTX)
    assert v["status"] == "invalid"
    assert {"no_g3_offloads", "no_g3_onboards"} <= set(v["reasons"])


def test_broken_telemetry_alignment_is_invalid(verdict_of):
    v = verdict_of("H2B", World(telemetry_gap=(0.2, 0.6)), **CTX)
    assert v["status"] == "invalid"
    assert "alignment_below_95pct" in v["reasons"]
    assert v["gates"]["alignment"]["value"] < 0.95


def test_h2a_reads_of_other_processes_are_not_a_s(verdict_of, criterion):
    """Another process reading 400 kB/s in every window is not A's traffic: judged on
    the server's own reads (its process tree's counter) it stays idle; without that
    counter the device's reads decide, and they rose."""
    v = verdict_of("H2A", World(system_read_kbps=400.0), **CTX)
    assert v["status"] == "supported"
    c = criterion(v, "device_reads_vs_idle")
    assert c["details"]["method"] == "server_read_bytes" and c["ci"][1] < 0.10
    v = verdict_of("H2A", World(system_read_kbps=400.0, server_io=False), **CTX)
    assert v["status"] == "not supported"
    assert criterion(v, "device_reads_vs_idle")["details"]["method"] == "device_reads"
    # A's own reads still count where the per-process counter sees them
    v = verdict_of("H2A", World(a_read_kbps=400.0), **CTX)
    assert v["status"] == "not supported"
    assert criterion(v, "device_reads_vs_idle")["details"]["method"] == "server_read_bytes"


def test_h2b_await_rise_is_measured_from_the_unloaded_read_time(verdict_of, criterion):
    """The knee's await minus the device's unloaded read time: the planted queueing,
    0.5 ms per unit of fetch share at the knee's share 0.6, whatever the unloaded time."""
    v = verdict_of("H2B", World(unloaded_read_ms=0.3), **CTX)
    c = criterion(v, "read_await_rises")
    assert c["status"] == "supported"
    assert c["value"] == pytest.approx(0.3, rel=0.1)
    assert c["details"]["unloaded_read_ms"] == pytest.approx(0.3, rel=1e-6)
    assert v["status"] == "supported"


def test_h2b_reads_that_never_queue_are_no_await_rise(verdict_of, criterion):
    """G3's reads one at a time on an idle device: their await is the device's unloaded
    read time, so "device read await rises with it" fails and so does H2B."""
    v = verdict_of("H2B", World(g3_queueing_ms=0.0), **CTX)
    c = criterion(v, "read_await_rises")
    assert c["status"] == "not supported"
    assert c["reasons"] == ["rise_not_material:read_await_rises"]
    assert v["status"] == "not supported"


def test_h2b_await_rise_must_be_material_to_support_not_merely_above_zero(verdict_of, criterion):
    """A rise of exactly half the unloaded time (0.1 ms over 0.2): its CI lies above 0
    but straddles the material rise, so it neither supports nor refutes. A rise clearly
    above it supports; one clearly below refutes."""
    noisy = World(unloaded_read_ms=0.2, g3_queueing_ms=0.1 / 0.6, await_rep_noise_ms=0.02)
    at_floor = criterion(verdict_of("H2B", noisy, **CTX), "read_await_rises")
    assert 0 < at_floor["ci"][0] < 0.1 < at_floor["ci"][1]
    assert at_floor["status"] == "inconclusive"
    above = World(unloaded_read_ms=0.2, g3_queueing_ms=0.2 / 0.6)
    assert criterion(verdict_of("H2B", above, **CTX), "read_await_rises")["status"] == ("supported")
    below = World(unloaded_read_ms=0.2, g3_queueing_ms=0.05 / 0.6)
    c = criterion(verdict_of("H2B", below, **CTX), "read_await_rises")
    assert c["status"] == "not supported" and c["value"] > 0


def test_h2b_without_an_unloaded_baseline_is_missing_not_idle(verdict_of, criterion):
    """No probe: no baseline. The idle phase is not one: in the demo it completed no
    reads at all, and comparing with it called a device's service time a rise."""
    v = verdict_of("H2B", World(read_probe=False), **CTX)
    c = criterion(v, "read_await_rises")
    assert c["status"] == "inconclusive"
    assert c["reasons"] == ["no_read_await_or_unloaded_baseline"]
    assert v["status"] == "inconclusive"
