"""H7: G3 onboards x block bytes predict device reads; p99 follows G3 fetch p95."""

from spark_harness_testkit.synthetic import World


def test_planted_prediction_is_supported(verdict_of, criterion):
    v = verdict_of("H7")
    assert v["status"] == "supported"
    ratio = criterion(v, "read_bytes_ratio")
    assert 0.9 < ratio["value"] < 1.2  # observed = predicted (+ idle noise)
    assert criterion(v, "read_bytes_r2")["ci"][0] >= 0.8
    assert criterion(v, "p99_vs_g3_fetch_p95")["ci"][0] > 0
    assert {r["hyp"] for r in v["runs"]} == {"H2B", "H4B"}


def test_reads_three_times_the_prediction_are_not_supported(verdict_of, criterion):
    v = verdict_of("H7", World(device_read_factor=3.0))
    assert criterion(v, "read_bytes_ratio")["status"] == "not supported"
    assert v["status"] == "not supported"


def test_observed_bytes_are_the_servers_own_per_process_reads(verdict_of, criterion):
    """fio's reads land on the same device; the per-process counter leaves them out (the
    old rule took device reads, fio's included, as the server's)."""
    v = verdict_of("H7", World(qos_read_mib_s={"none": 0.0, "moderate": 200.0, "heavy": 800.0}))
    ratio = criterion(v, "read_bytes_ratio")
    assert ratio["details"]["observed_method"] == "server_read_bytes"
    assert ratio["status"] == "supported" and 0.9 < ratio["value"] < 1.1
    assert v["status"] == "supported"


def test_without_per_process_counter_fios_own_report_is_subtracted(verdict_of, criterion):
    fio = {"none": 0.0, "moderate": 200.0, "heavy": 800.0}
    v = verdict_of("H7", World(qos_read_mib_s=fio, server_io=False))
    ratio = criterion(v, "read_bytes_ratio")
    assert ratio["details"]["observed_method"] == "device_minus_perturbation"
    assert ratio["status"] == "supported" and 0.9 < ratio["value"] < 1.2
    assert v["status"] == "supported"


def test_kvbm_without_fetch_latency_uses_the_onboard_rate(verdict_of, criterion):
    v = verdict_of("H7", World(spark=True))
    c = criterion(v, "p99_vs_g3_fetch_p95")
    assert c["details"]["method"] == "g3_onboard_rate" and c["status"] == "supported"
    assert v["status"] == "supported"


def test_runs_without_the_g3_counter_are_missing_evidence_not_unengaged(verdict_of):
    """Planted: stack B exports no G3 onboard counter. Whether NVMe was engaged is then
    unknown: the verdict is inconclusive for want of the counters (it was invalid, as if
    the runs had shown no traffic), and no run is listed as one that did not engage NVMe."""
    v = verdict_of("H7", World(no_g3_onboard_counter=("B",)))
    assert v["status"] == "inconclusive"
    assert "no_kv_tier_telemetry" in v["reasons"] and "no_usable_runs" not in v["reasons"]
    assert not any(r["excluded_reason"] == "nvme_not_engaged" for r in v["runs"])


def test_runs_whose_counters_show_no_g3_traffic_are_listed_as_not_engaged(verdict_of):
    v = verdict_of("H7", World(g3_counter_scale=0.0))
    assert v["status"] == "invalid"
    unused = [r for r in v["runs"] if not r["used"]]
    assert unused and {r["excluded_reason"] for r in unused} == {"nvme_not_engaged"}
