"""Quality and mechanism gates on hand-made run tables."""

import polars as pl
import pytest

from spark_harness.analysis import evidence


def _runs(**cols) -> pl.DataFrame:
    base = {"hyp": ["H"] * 3, "stack": ["B"] * 3, "point": ["p1", "p1", "p2"], "rep": [0, 1, 0]}
    return pl.DataFrame({**base, **cols})


def test_alignment_gate_names_failing_runs():
    g = evidence.alignment_gate(_runs(aligned_share=[1.0, 0.94, 0.99]))
    assert g.passed is False and g.effect == "invalid"
    assert g.reasons == ["alignment_below_95pct"]
    assert g.details["failing_runs"] == [["H", "B", "p1", 1, 0.94]]
    assert evidence.alignment_gate(_runs(aligned_share=[0.95, 1.0, 1.0])).passed


def test_sim_clock_gate_fails_runs_whose_simulator_fell_behind():
    g = evidence.sim_clock_gate(_runs(sim_step_overrun=[1.0, 1.2, 1.04]))
    assert g.passed is False and g.effect == "invalid"
    assert g.reasons == ["sim_behind_model"]
    assert g.details["failing_runs"] == [["H", "B", "p1", 1, 1.2]]
    assert evidence.sim_clock_gate(_runs(sim_step_overrun=[1.0, 1.05, 1.01])).passed
    # real servers report no simulator clock: the gate does not apply
    assert evidence.sim_clock_gate(_runs(sim_step_overrun=[None, None, None])).passed is None


def test_repetition_and_cov_gates():
    table = pl.DataFrame(
        {
            "hyp": ["H"] * 3,
            "stack": ["B"] * 3,
            "point": ["a", "b", "c"],
            "n_reps": [3, 2, 0],
            "cov_p99": [0.05, None, None],
        }
    )
    g = evidence.repetitions_gate(table)
    assert g.passed is False
    assert g.reasons == ["fewer_than_3_repetitions", "point_without_usable_runs"]
    assert evidence.cov_gate(table).passed is True
    noisy = table.with_columns(pl.Series("cov_p99", [0.12, None, None]))
    assert evidence.cov_gate(noisy).reasons == ["cov_p99_over_10pct"]
    assert evidence.cov_gate(table.with_columns(pl.lit(None).alias("cov_p99"))).passed is None


def test_mechanism_gate_reason_codes():
    zeros = _runs(
        offload_g2_g3_blocks=[0.0] * 3, offload_g1_g3_blocks=[0.0] * 3, g3_onboard_blocks=[0.0] * 3
    )
    assert evidence.mechanism_gate(zeros, "g3", "all").reasons == [
        "no_g3_offloads",
        "no_g3_onboards",
    ]
    missing = _runs(offload_g2_g3_blocks=[None] * 3, g3_onboard_blocks=[None] * 3)
    g = evidence.mechanism_gate(
        missing.cast({"offload_g2_g3_blocks": pl.Float64, "g3_onboard_blocks": pl.Float64}),
        "g3",
        "all",
    )
    # missing telemetry is missing, not zero: inconclusive, never a pass or "no traffic"
    assert g.reasons == ["no_kv_tier_telemetry"] and g.effect == "inconclusive"
    assert g.passed is False


def test_mechanism_gate_is_per_run_not_summed():
    """One busy run cannot cover idle ones: every run needs offloads and onboards."""
    some = _runs(
        offload_g2_g3_blocks=[1.0, 0.0, 4.0],
        offload_g1_g3_blocks=[0.0, 0.0, 0.0],
        g3_onboard_blocks=[0.0, 3.0, 2.0],
    )
    g = evidence.mechanism_gate(some, "g3", "all")
    assert g.passed is False and g.effect == "invalid"
    assert g.reasons == ["no_g3_offloads", "no_g3_onboards"]
    assert g.details["failing_runs"] == [
        ["H", "B", "p1", 0, 1.0, 0.0],
        ["H", "B", "p1", 1, 0.0, 3.0],
    ]
    every = some.with_columns(pl.Series("offload_g1_g3_blocks", [0.0, 2.0, 0.0]),
                              pl.Series("g3_onboard_blocks", [1.0, 3.0, 2.0]))  # fmt: skip
    assert evidence.mechanism_gate(every, "g3", "all").passed is True
    one_unknown = every.with_columns(pl.Series("g3_onboard_blocks", [1.0, None, 2.0]))
    g = evidence.mechanism_gate(one_unknown, "g3", "all")
    assert (g.passed, g.effect, g.reasons) == (False, "inconclusive", ["no_kv_tier_telemetry"])
    host = _runs(offload_g1_g2_blocks=[5.0] * 3, g2_onboard_blocks=[1.0] * 3)
    # a host-only stack: no G3 directory, or tiers declared without G3
    no_disk = host.with_columns(pl.lit(None, pl.String).alias("g3_dir"))
    assert evidence.mechanism_gate(no_disk, "any", "all").passed is True
    declared = host.with_columns(pl.Series("kv_tiers", [["g1", "g2"]] * 3))
    assert evidence.mechanism_gate(declared, "any", "all").passed is True


def test_a_tier_whose_counters_are_missing_is_not_zero_beside_one_whose_are_there():
    """G2's counters alone must not stand for G2 + G3 on a stack with a G3 directory: a
    missing G3 counter is missing evidence, not G3 traffic of 0."""
    g2_only = _runs(offload_g1_g2_blocks=[5.0] * 3, g2_onboard_blocks=[1.0] * 3, g3_dir=["/g3"] * 3)
    g = evidence.mechanism_gate(g2_only, "any", "all")
    assert (g.passed, g.effect, g.reasons) == (False, "inconclusive", ["no_kv_tier_telemetry"])
    c = evidence.no_tier_traffic(g2_only, "any", "no_tiers", "src")
    assert (c.status, c.reasons) == ("inconclusive", ["no_kv_tier_telemetry"])
    # a counter the run reported counts even where its stack declares no such tier
    declared = _runs(g3_onboard_blocks=[0.0, 5.0, 0.0], kv_tiers=[["g1", "g2"]] * 3)
    c = evidence.no_tier_traffic(declared, "g3", "no_g3", "src")
    assert (c.status, c.value) == ("not supported", 5.0)
    # one route into G3 reported is enough (vLLM offloads to G3 only through G2)
    vllm = _runs(offload_g2_g3_blocks=[2.0] * 3, g3_onboard_blocks=[1.0] * 3, g3_dir=["/g3"] * 3)
    assert evidence.mechanism_gate(vllm, "g3", "all").passed is True


def test_no_tier_traffic_missing_is_not_zero():
    cols = {"g3_onboard_blocks": [None] * 3, "g3_dir": ["/g3"] * 3}
    frame = _runs(**cols).cast({"g3_onboard_blocks": pl.Float64})
    c = evidence.no_tier_traffic(frame, "g3", "no_g3", "src")
    assert (c.status, c.reasons, c.role) == ("inconclusive", ["no_kv_tier_telemetry"], "rule")
    tierless = frame.with_columns(pl.lit(None, pl.String).alias("g3_dir"))
    c = evidence.no_tier_traffic(tierless, "g3", "no_g3", "src")
    assert (c.status, c.reasons, c.role) == ("inconclusive", ["stack_without_kv_tiers"], "info")
    seen = frame.with_columns(pl.Series("g3_onboard_blocks", [0.0, 0.0, 5.0]))
    assert evidence.no_tier_traffic(seen, "g3", "no_g3", "src").status == "not supported"
    idle = frame.with_columns(pl.Series("g3_onboard_blocks", [0.0, 0.0, 0.0]))
    assert evidence.no_tier_traffic(idle, "g3", "no_g3", "src").status == "supported"


def test_server_reads_prefer_the_per_process_counter_then_subtract_fio():
    base = _runs(
        read_bytes=[10e6, 30e6, 50e6],
        idle_read_kbps=[1.0, 1.0, 1.0],
        window_s=[2.0, 2.0, 2.0],
        perturbation_read_bps=[0.0, 10e6, 20e6],
    )
    own, method = evidence.server_reads(base.with_columns(server_read_bytes=pl.lit(7e6)))
    assert method == "server_read_bytes" and own[evidence.SERVER_READS].to_list() == [7e6] * 3
    own, method = evidence.server_reads(base)
    assert method == "device_minus_perturbation"
    assert own[evidence.SERVER_READS].to_list() == pytest.approx(
        [10e6 - 2048, 10e6 - 2048, 10e6 - 2048]
    )
    unknown = base.with_columns(pl.Series("perturbation_read_bps", [0.0, None, 1.0]))
    assert evidence.server_reads(unknown)[1] is None


def test_tail_is_p99_only_with_200_requests_in_every_window():
    assert evidence.tail_quantile(_runs(n_steady_ok=[200, 250, 300])) == ("p99", [])
    short = evidence.tail_quantile(_runs(n_steady_ok=[200, 199, 300]))
    assert short == ("p95", ["tail_p95_fewer_than_200_requests"])
    table = pl.DataFrame(
        {
            "hyp": ["H"] * 3,
            "stack": ["B"] * 3,
            "point": ["a", "b", "c"],
            "tail": ["p99", "p95", None],  # c: no usable run
            "min_steady_ok": [250, 150, None],
        }
    )
    g = evidence.tail_report(table)
    assert g.passed is False and g.effect == "report" and g.value == 150
    assert g.reasons == ["tail_p95_fewer_than_200_requests"]
    assert g.details["points"] == ["H/B/b"]
    assert evidence.tail_report(table.filter(pl.col("point") != "b")).passed is True


def test_cov_gate_judges_the_tail_each_point_reports():
    """A point whose windows are too short for p99 reports p95: its CoV is p95's."""
    table = pl.DataFrame(
        {
            "hyp": ["H"] * 2,
            "stack": ["B"] * 2,
            "point": ["long", "short"],
            "tail": ["p99", "p95"],
            "cov_p99": [0.05, 0.30],  # the short windows' p99 is a near-maximum: noise
            "cov_p95": [0.04, 0.06],
        }
    )
    assert evidence.cov_gate(table).passed is True
    noisy = table.with_columns(pl.Series("cov_p95", [0.04, 0.15]))
    g = evidence.cov_gate(noisy)
    assert (g.passed, g.reasons) == (False, ["cov_p95_over_10pct"])
    assert g.details["points"] == {"H/B/short": {"tail": "p95", "cov": 0.15}}


def test_engagement_known_zero_and_unknown_are_told_apart() -> None:
    """A run whose counters show no G3 onboards did not engage NVMe; a run without the
    counter is unknown. With engaged runs beside them both are left out, each with its
    reason; with none engaged and some unknown, every run stays in (the verdict waits for
    the counters instead of calling the traffic none)."""
    mixed = pl.DataFrame({"run_id": ["a", "b", "c"], "g3_onboard_blocks": [5.0, 0.0, None]})
    assert evidence.engaged(mixed)["run_id"].to_list() == ["a"]
    reasons = evidence.not_engaged_reasons(mixed)
    assert reasons == {"b": "nvme_not_engaged", "c": "no_kv_tier_telemetry"}
    unknown = pl.DataFrame({"run_id": ["b", "c"], "g3_onboard_blocks": [0.0, None]})
    assert evidence.engaged(unknown)["run_id"].to_list() == ["b", "c"]
    idle = pl.DataFrame({"run_id": ["b"], "g3_onboard_blocks": [0.0]})
    assert evidence.engaged(idle).height == 0
    no_column = pl.DataFrame({"run_id": ["x"]})
    assert evidence.not_engaged_reasons(no_column) == {"x": "no_kv_tier_telemetry"}
