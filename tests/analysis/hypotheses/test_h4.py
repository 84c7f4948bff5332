"""H4A (A's p99 barely moves under QoS) and H4B (B's p99 slope on read await)."""

import pytest

from spark_harness_testkit.synthetic import World


def test_h4a_p99_flat_while_await_rises(verdict_of, criterion):
    v = verdict_of("H4A")
    assert v["status"] == "supported"
    assert criterion(v, "p99_change")["ci"][1] < 0.10
    assert criterion(v, "read_await_rises")["ci"][0] > 0
    assert v["gates"]["perturbation"]["passed"] is True


def test_h4a_await_rise_is_measured_from_the_unloaded_read_time(verdict_of, criterion):
    """A reads nothing under no contention, so the rise under heavy contention is its
    await over the device's unloaded read time: the planted 4 ms."""
    v = verdict_of("H4A", World(unloaded_read_ms=0.5))
    c = criterion(v, "read_await_rises")
    assert c["value"] == pytest.approx(4.0, rel=0.05)
    assert c["statistic"] == "read await at qos-heavy - unloaded read time"


def test_h4a_perturbation_without_await_rise_is_invalid(verdict_of):
    flat = {"none": 0.0, "moderate": 0.0, "heavy": 0.0}  # await stays the unloaded time
    v = verdict_of("H4A", World(qos_await_ms=flat))
    assert v["status"] == "invalid"
    assert v["gates"]["perturbation"]["passed"] is False
    assert "perturbation_no_await_rise" in v["reasons"]


def test_h4b_perturbation_without_await_rise_is_invalid(verdict_of, criterion):
    """As H4A's: a degradation that did not degrade put the claim to no test; p99 that
    did not move is then no evidence against it (before: not supported)."""
    flat = {"none": 0.0, "moderate": 0.0, "heavy": 0.0}
    v = verdict_of("H4B", World(qos_slope=8.0, qos_await_ms=flat))
    assert v["status"] == "invalid"
    assert v["gates"]["perturbation"]["passed"] is False
    assert criterion(v, "read_await_rises")["role"] == "info"


def test_planted_h4b_slope_is_found(verdict_of, criterion):
    v = verdict_of("H4B", World(qos_slope=8.0))
    slope = criterion(v, "slope_p99_vs_read_await_ms")
    assert slope["status"] == "supported" and slope["ci"][0] > 0
    assert v["status"] == "supported"
    assert v["gates"]["perturbation"]["passed"] is True
    # 4 users, below the knee: p99 = 1.4 x (p50 + 8 ms per ms of await), so the planted
    # slope is 1.4 x 8 = 11.2 ms of p99 per ms of read await
    assert 10 < slope["value"] < 12.5


def test_zero_h4b_slope_is_not_found(verdict_of, criterion):
    v = verdict_of("H4B", World(qos_slope=0.0))
    slope = criterion(v, "slope_p99_vs_read_await_ms")
    assert slope["status"] == "not supported"
    assert "rise_not_material:slope_p99_vs_read_await_ms" in slope["reasons"]
    assert v["status"] == "not supported"


def test_a_fetch_slope_without_a_rise_under_degradation_is_not_h4b(verdict_of, criterion):
    """G3 on no contended device (in memory): the degradation leaves B's p99 where it
    was, but each run's G3 fetch p95 follows its own TTFT (part of it), so the slope of
    p99 on fetch p95 is positive from the repetitions' spread alone. The old evaluator
    supported H4B here; the rise under the heaviest profile refutes it, and so does the
    slope's own rise across the fetch range: precisely positive, too small to matter."""
    v = verdict_of("H4B", World(qos_slope=0.0, b_device_counters=False, rep_noise=0.03))
    slope = criterion(v, "slope_p99_vs_g3_fetch_p95_ms")
    assert slope["ci"][0] > 0  # the trap: a slope from the runs' own spread...
    assert slope["status"] == "not supported"  # ...whose rise is not material
    assert "rise_not_material:slope_p99_vs_g3_fetch_p95_ms" in slope["reasons"]
    rise = criterion(v, "p99_rises_with_degradation")
    assert rise["status"] == "not supported" and rise["ci"][1] < 0.10
    assert rise["reasons"] == ["rise_not_material:p99_rises_with_degradation"]
    assert v["status"] == "not supported"


def test_h4b_rise_under_degradation_is_measured(verdict_of, criterion):
    v = verdict_of("H4B", World(qos_slope=8.0))
    rise = criterion(v, "p99_rises_with_degradation")
    assert rise["status"] == "supported" and rise["ci"][0] > 0.10
    assert rise["details"]["profile"] == "qos-heavy"


def test_noisy_repetitions_make_h4b_inconclusive(verdict_of):
    v = verdict_of("H4B", World(qos_slope=0.5, rep_noise=0.3))
    assert v["status"] == "inconclusive"
    assert "cov_p99_over_10pct" in v["reasons"]


def test_h4b_reports_the_servers_own_reads_apart_from_fios(verdict_of, criterion):
    fio = {"none": 0.0, "moderate": 200.0, "heavy": 800.0}  # MiB/s fio reads itself
    for world, method in (
        (World(qos_read_mib_s=fio), "server_read_bytes"),
        (World(qos_read_mib_s=fio, server_io=False), "device_minus_perturbation"),
    ):
        v = verdict_of("H4B", world)
        c = criterion(v, "server_own_reads")
        assert c["details"]["method"] == method
        # H4B runs at 2048 tokens with G3 at 60 % of TTFT: at most 300 x 0.6 x 2048 / 16
        # blocks of 64 KiB each run (less where the steady-state window drops a warm-up),
        # never with the 800 MiB/s x 4 s (3.2 GB) fio read beside them
        planted = 300 * 0.6 * 2048 / 16 * 65536
        assert all(0.7 < b / planted < 1.02 for b in c["details"]["per_run"])
        assert v["status"] == "supported"


def test_h4b_without_the_servers_own_device_reads_is_invalid(verdict_of, criterion):
    """G3 in memory: the server reads nothing from the contended device, yet p99 rises
    under fio (on a 2-core machine its CPU load does it: an oracle world rose 9.6 %, CI
    0.3 to 18.6 %). The old evaluator supported H4B from that rise; the mechanism, the
    server's own reads from the device in every run, is missing: invalid."""
    v = verdict_of("H4B", World(device_read_factor=0.0))
    assert criterion(v, "p99_rises_with_degradation")["status"] == "supported"  # the trap
    assert criterion(v, "server_own_reads")["value"] == 0.0
    gate = v["gates"]["storage_in_path"]
    assert gate["passed"] is False and gate["reasons"] == ["no_server_device_reads"]
    assert v["status"] == "invalid" and "no_server_device_reads" in v["reasons"]


def test_h4b_storage_gate_passes_where_the_server_reads_the_device(verdict_of):
    v = verdict_of("H4B")
    assert v["gates"]["storage_in_path"]["passed"] is True
    assert v["gates"]["storage_in_path"]["value"] > 0


def test_h4b_with_one_profile_decides_nothing(verdict_of, criterion):
    """One QoS profile has no range to rise across: the runs' scatter around it is no
    slope, and a rise of exactly 0 across it is no refutation."""
    sweep = [{"key": "qos.profile", "role": "qos_profile", "name": "qos", "values": ["heavy"]}]
    v = verdict_of("H4B", World(qos_slope=8.0), sweep=sweep)
    slope = next(c for c in v["criteria"] if c["name"].startswith("slope_p99_vs_"))
    assert slope["status"] == "inconclusive"
    assert slope["reasons"] == [f"one_design_point:{slope['name']}"]
    assert v["status"] != "not supported"
