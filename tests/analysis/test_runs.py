"""Per-run evidence against the numbers planted in synthetic runs."""

import json

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from spark_harness.analysis import runs as runs_mod
from spark_harness.analysis.stats import percentile
from spark_harness.ingest import ingest
from spark_harness_testkit.synthetic import VLLM_OFFLOAD_BYTES, Levels, RunSpec, write_run


def _load(tmp_path, *specs: RunSpec) -> runs_mod.Runs:
    dirs = [write_run(tmp_path / "results", rs) for rs in specs]
    ingest(dirs, tmp_path / "ingest")
    return runs_mod.load({(specs[0].hyp, specs[0].stack): tmp_path / "ingest"})


PLANTED = RunSpec(
    "H2B",
    "B",
    "ctx-1024",
    0,
    axes={"workload.context_tokens": 1024},
    window=Levels(iowait_pct=3.0, read_iops=100.0, read_kbps=6400.0, read_await_ms=2.0),
    idle=Levels(iowait_pct=0.5, read_iops=2.0, read_kbps=8.0, read_await_ms=0.1),
    counters={
        "kv_onboard_blocks_g3": 4000,
        "kv_offload_blocks_g2_g3": 3000,
        "server_read_bytes": 5e8,
    },
    g3_fetch_share=0.5,
    cached_share=0.5,
    error_share=0.05,
    n_requests=1000,
)


def test_window_metrics_match_the_plant(tmp_path):
    data = _load(tmp_path, PLANTED)
    r = data.runs.row(0, named=True)
    # counters grow evenly over the 4 s load window; the analysed window is its steady part
    assert r["window_s"] + r["warmup_s"] == pytest.approx(4.0)
    assert r["warmup_s"] <= 2.0
    share = r["window_s"] / 4.0
    assert r["g3_onboard_blocks"] == pytest.approx(4000 * share, rel=0.02)
    assert r["offload_g2_g3_blocks"] == pytest.approx(3000 * share, rel=0.02)
    assert r["server_read_bytes"] == pytest.approx(5e8 * share, rel=0.02)
    assert r["iowait_pct"] == pytest.approx(3.0, rel=0.02)
    assert r["idle_iowait_pct"] == pytest.approx(0.5, rel=0.02)
    assert r["read_await_ms"] == pytest.approx(2.0, rel=0.02)
    assert r["read_bytes"] == pytest.approx(6400 * 1024 * r["window_s"], rel=0.06)
    assert r["error_share"] == pytest.approx(0.05, abs=0.02)
    assert r["marked"] is False  # run.json said ok; the error share is what marks it later
    assert r["g3_fetch_share_p95"] == pytest.approx(0.5, rel=1e-6)


def test_simulator_clock_overrun_from_its_step_counters(tmp_path):
    behind = RunSpec(
        "H0",
        "A",
        "users-8",
        0,
        counters={"sim_engine_step_modeled_seconds": 400, "sim_engine_step_actual_seconds": 480},
    )
    on_time = RunSpec("H0", "A", "users-8", 1)  # counters flat: nothing modeled, no ratio
    r = _load(tmp_path, behind, on_time).runs
    assert r["sim_step_overrun"].to_list() == [pytest.approx(1.2, rel=0.01), None]


def test_ttft_percentiles_recomputed_from_the_ingested_rows(tmp_path):
    data = _load(tmp_path, PLANTED)
    req = pl.read_parquet(tmp_path / "ingest" / "requests.parquet")
    r = data.runs.row(0, named=True)
    steady = pl.col("in_window") & pl.col("ok") & (pl.col("done_ns") >= r["window_start_ns"])
    ok = np.sort(req.filter(steady)["ttft_ms"].to_numpy())
    assert r["n_steady_ok"] == len(ok)
    # counts of the whole load window stay: errors are reported, never dropped
    assert r["n_window_ok"] == req.filter(pl.col("in_window") & pl.col("ok")).height
    for q, name in ((0.5, "ttft_p50"), (0.95, "ttft_p95"), (0.99, "ttft_p99")):
        assert r[name] == percentile(ok, q)
    assert r["ttft_p50"] == pytest.approx(50, rel=0.05)
    assert r["ttft_p99"] == pytest.approx(70, rel=0.08)
    np.testing.assert_array_equal(data.ttft[r["run_id"]], ok)


def test_missing_kv_telemetry_is_null_not_zero(tmp_path):
    rs = RunSpec("H2B", "B", "p", 0, kv_telemetry=False, counters={"kv_onboard_blocks_g3": 10})
    r = _load(tmp_path, rs).runs.row(0, named=True)
    assert r["g3_onboard_blocks"] is None
    assert r["kv_g1_usage"] is None
    assert r["read_await_ms"] is not None


def test_working_set_and_tier_shares(tmp_path):
    rs = RunSpec(
        "H5",
        "B",
        "sessions-8",
        0,
        sessions=8,
        prompt_tokens=100,
        output_tokens=4,
        cached_share=0.5,
        counters={"kv_onboard_blocks_g3": 400 * 2, "kv_onboard_blocks_g2": 400},
    )
    data = _load(tmp_path, rs)
    r = runs_mod.with_tier_shares(data.runs).row(0, named=True)
    assert r["n_sessions"] == 8
    assert r["working_set_tokens"] == 8 * 104
    # 400 requests x 100 prompt tokens; 800 G3 and 400 G2 blocks of 16 tokens
    assert r["share_g3"] == pytest.approx(800 * 16 / 40000, rel=0.02)
    assert r["share_g2"] == pytest.approx(400 * 16 / 40000, rel=0.02)
    # reused tokens: the cached 50 % of 40000 (more than the 19200 onboarded ones)
    assert r["g3_hit_share"] == pytest.approx(800 * 16 / 20000, rel=0.02)
    total = r["share_g1"] + r["share_g2"] + r["share_g3"] + r["share_miss"]
    assert total == pytest.approx(1.0)


def test_an_unknown_g3_share_stays_unknown():
    """No G3 counter, or neither cached tokens nor onboards: G3's share of the reused
    tokens is unknown (null), never 0; no reuse at all is a share of 0."""
    frame = pl.DataFrame(
        {
            "block_tokens": [16, 16, 16],
            "prompt_tokens": [100.0, 100.0, 100.0],
            "cached_tokens": [None, 50.0, 0.0],
            "g3_onboard_blocks": [None, None, 0.0],
            "g2_onboard_blocks": [None, None, 0.0],
        }
    )
    shares = runs_mod.with_tier_shares(frame)["g3_hit_share"].to_list()
    assert shares == [None, None, 0.0]


def test_failed_attempts_stay_in_points_but_not_in_runs(tmp_path):
    ok = RunSpec("H0", "A", "users-1", 0)
    failed = RunSpec("H0", "A", "users-1", 1, outcome="failed", reasons=["server_died"])
    data = _load(tmp_path, ok, failed)
    assert data.points.height == 2
    assert data.runs["rep"].to_list() == [0]
    lost = data.points.filter(pl.col("excluded")).row(0, named=True)
    assert lost["exclude_reason"] == "run_failed:server_died"


def test_row_order_of_the_tables_does_not_matter(tmp_path):
    data = _load(
        tmp_path, PLANTED, RunSpec("H2B", "B", "ctx-1024", 1, counters={"kv_onboard_blocks_g3": 50})
    )
    for name in ("telemetry.parquet", "requests.parquet"):
        path = tmp_path / "ingest" / name
        pl.read_parquet(path).sample(fraction=1.0, shuffle=True, seed=3).write_parquet(path)
    again = runs_mod.load({("H2B", "B"): tmp_path / "ingest"})
    assert_frame_equal(again.runs, data.runs, check_exact=False, rel_tol=1e-12)


def _with_ttft_trend(tmp_path, factor, steady: bool = True) -> runs_mod.Runs:
    """PLANTED with each request's TTFT scaled by factor(share of the load window done)."""
    data = _load(tmp_path, PLANTED)
    path = tmp_path / "ingest" / "requests.parquet"
    p = data.points.row(0, named=True)
    start, end = p["window_start_ns"], p["window_end_ns"]
    req = pl.read_parquet(path)
    at = ((req["done_ns"] - start) / (end - start)).clip(0, 1).to_numpy()
    req.with_columns(pl.Series("ttft_ms", req["ttft_ms"].to_numpy() * factor(at))).write_parquet(
        path
    )
    return runs_mod.load({("H2B", "B"): tmp_path / "ingest"}, steady=steady)


def test_warm_up_is_dropped_until_ttft_settles(tmp_path):
    """TTFT 4x at the start decaying to steady by 20 % of the window: the analysed window
    starts near there, and its p99 is the steady one."""
    r = _with_ttft_trend(tmp_path, lambda at: 1 + 3 * np.clip(1 - at / 0.2, 0, 1)).runs
    r = r.row(0, named=True)
    assert 0.15 * 4 <= r["warmup_s"] <= 0.35 * 4
    assert r["steady_reason"] is None
    assert r["ttft_p99"] == pytest.approx(70, rel=0.1)
    assert r["throughput_rps"] == pytest.approx(r["n_steady_ok"] / r["window_s"])


def test_a_run_that_never_settles_is_capped_at_half_its_window(tmp_path):
    r = _with_ttft_trend(tmp_path, lambda at: np.exp(3 * (1 - at))).runs.row(0, named=True)
    assert r["steady_reason"] == "no_steady_state"
    assert r["warmup_s"] == pytest.approx(2.0, abs=0.01)


def test_a_transient_plan_entry_keeps_the_whole_window(tmp_path):
    data = _with_ttft_trend(tmp_path, lambda at: np.exp(3 * (1 - at)), steady=False)
    r = data.runs.row(0, named=True)
    assert r["warmup_s"] == 0 and r["steady_reason"] is None
    assert r["window_s"] == pytest.approx(4.0)
    assert r["n_steady_ok"] == data.points.row(0, named=True)["n_window_ok"]


def _replan_reads(d, reads_at) -> None:
    """Rewrite each window sample's reads/s and await: ``reads_at(i) -> (r_s, await)``."""
    path = d / "telemetry.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    samples = [r for r in rows if r.get("kind") == "sample"]
    for i, r in enumerate(samples):
        r_s, wait = reads_at(i)
        r["disk_nvme0n1_r_s"], r["disk_nvme0n1_r_await_ms"] = r_s, wait
        r["disk_nvme0n1_rkb_s"] = r_s * 256.0  # 256 KiB requests
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_read_await_is_a_mean_over_reads_not_over_samples(tmp_path):
    """A sample's await weighs by its reads; a sample without reads (iostat's 0.00) has
    none. Planted: the samples cycle through 100 reads/s at 1 ms, 300 reads/s at 3 ms
    and none, so the reads' mean is near 2.5 ms and the samples' near 1.33 ms."""
    d = write_run(tmp_path / "results", PLANTED)
    plan = [(100.0, 1.0), (300.0, 3.0), (0.0, 0.0)]
    _replan_reads(d, lambda i: plan[i % 3])
    ingest([d], tmp_path / "ingest")
    tel = pl.read_parquet(tmp_path / "ingest" / "telemetry.parquet")
    assert tel.filter(pl.col("io_r_s") == 0)["io_r_await_ms"].is_null().all()
    r = runs_mod.load({("H2B", "B"): tmp_path / "ingest"}).runs.row(0, named=True)
    win = tel.filter((pl.col("phase") == "load") & (pl.col("t_ns") >= r["window_start_ns"]))
    reads = (win["io_r_s"] * win["dt_s"]).to_numpy()
    waits = win["disk_nvme0n1_r_await_ms"].to_numpy()
    assert r["read_await_ms"] == pytest.approx((reads * waits).sum() / reads.sum(), rel=1e-9)
    assert 2.3 < r["read_await_ms"] < 2.7  # the samples' plain mean is about 1.33
    assert r["read_request_bytes"] == pytest.approx(256 * 1024, rel=1e-6)


def test_idle_phase_without_reads_has_no_await(tmp_path):
    d = write_run(tmp_path / "results", PLANTED)
    idle_samples = 1.0 / 0.2  # the first second of samples is the idle phase
    _replan_reads(d, lambda i: (0.0, 0.0) if i < idle_samples else (100.0, 2.0))
    ingest([d], tmp_path / "ingest")
    r = runs_mod.load({("H2B", "B"): tmp_path / "ingest"}).runs.row(0, named=True)
    assert r["idle_read_await_ms"] is None
    assert r["read_await_ms"] == pytest.approx(2.0, rel=1e-6)


def test_unloaded_read_time_is_read_at_the_windows_request_size(tmp_path):
    """The probe's curve, interpolated on a log size scale at the window's mean request
    size and held beyond the probed sizes; the excess is await minus it, per run."""
    d = write_run(tmp_path / "results", PLANTED)
    run = json.loads((d / "run.json").read_text())
    curve = {"4096": 0.1, "65536": 0.2, "1048576": 1.0}
    run["read_probe"] = {"directory": "/scratch", "device": "nvme0n1", "unloaded_read_ms": curve}
    (d / "run.json").write_text(json.dumps(run))
    _replan_reads(d, lambda i: (100.0, 2.0))  # 256 KiB requests at 2 ms
    ingest([d], tmp_path / "ingest")
    r = runs_mod.load({("H2B", "B"): tmp_path / "ingest"}).runs.row(0, named=True)
    # 256 KiB is halfway between 64 KiB and 1 MiB on a log scale
    assert r["unloaded_read_await_ms"] == pytest.approx(0.6, rel=1e-6)
    assert r["read_await_excess_ms"] == pytest.approx(2.0 - 0.6, rel=1e-6)
    # a device the sidecar did not watch: no baseline, rather than another device's
    run["read_probe"]["device"] = "sdb"
    (d / "run.json").write_text(json.dumps(run))
    ingest([d], tmp_path / "ingest2")
    r = runs_mod.load({("H2B", "B"): tmp_path / "ingest2"}).runs.row(0, named=True)
    assert r["unloaded_read_await_ms"] is None and r["read_await_excess_ms"] is None


def test_unloaded_read_time_is_held_beyond_the_probed_sizes():
    frame = pl.DataFrame(
        {
            "unloaded_read_bytes": [[4096, 65536]] * 3 + [[]],
            "unloaded_read_ms": [[0.1, 0.2]] * 3 + [[]],
            "read_request_bytes": [512.0, 1e7, None, 4096.0],
        }
    )
    assert runs_mod._unloaded_await(frame).to_list() == [0.1, 0.2, None, None]


def test_vllm_offload_bytes_become_block_counts(tmp_path):
    """vLLM counts offload traffic in bytes: blocks = bytes / block_bytes, and G3's reads,
    which reach G1 through G2, are not counted as G2's own onboards."""
    block = 65536
    rs = RunSpec(
        "H2B",
        "B",
        "ctx-1024",
        0,
        block_bytes=block,
        exported=VLLM_OFFLOAD_BYTES,  # no block counter: vLLM exports none
        counters={
            "kv_offload_bytes_g1_g2": 4000 * block,
            "kv_onboard_bytes_g2_g1": 1000 * block,  # 600 of them first read from G3
            "kv_offload_bytes_g2_g3": 3000 * block,
            "kv_onboard_bytes_g3_g2": 600 * block,
        },
    )
    r = _load(tmp_path, rs).runs.row(0, named=True)
    share = r["window_s"] / 4.0  # counters grow evenly over the 4 s load window
    assert r["offload_g1_g2_blocks"] == pytest.approx(4000 * share, rel=0.02)
    assert r["offload_g2_g3_blocks"] == pytest.approx(3000 * share, rel=0.02)
    assert r["g3_onboard_blocks"] == pytest.approx(600 * share, rel=0.02)
    assert r["g2_onboard_blocks"] == pytest.approx(400 * share, rel=0.02)


def test_reported_block_counts_win_and_bytes_need_block_bytes(tmp_path):
    both = RunSpec(
        "H2B", "B", "p", 0, exported=VLLM_OFFLOAD_BYTES | {"kv_onboard_blocks_g3"},
        counters={"kv_onboard_blocks_g3": 100, "kv_onboard_bytes_g3_g2": 999 * 65536},
    )  # fmt: skip
    no_size = RunSpec(
        "H2B", "B", "p", 1, block_bytes=None, exported=VLLM_OFFLOAD_BYTES,
        counters={"kv_onboard_bytes_g3_g2": 10 * 65536},
    )  # fmt: skip
    r = _load(tmp_path, both, no_size).runs
    share = r["window_s"][0] / 4.0
    assert r["g3_onboard_blocks"][0] == pytest.approx(100 * share, rel=0.02)
    assert r["g3_onboard_blocks"][1] is None  # unknown, never a guess


def test_a_real_stacks_block_tokens_come_from_its_endpoint(tmp_path):
    """A command stack has no simulator section: tokens per block are the stack file's
    (its endpoint), which G3's hit share in tokens needs."""
    real = RunSpec(
        "H2B", "B", "p", 0, block_tokens=32, spec={"server": {"kind": "command", "sim": {}}}
    )
    assert _load(tmp_path, real).points["block_tokens"].to_list() == [32]
