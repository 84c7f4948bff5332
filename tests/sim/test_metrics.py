"""/metrics: the real servers' names, as prometheus-client's parser sees them."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .simclient import run, running_sim, words

VLLM = {
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:num_preemptions": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
}
KVBM = {
    "kvbm_offload_blocks_d2h": "counter",
    "kvbm_offload_blocks_h2d": "counter",
    "kvbm_offload_blocks_d2d": "counter",
    "kvbm_onboard_blocks_h2d": "counter",
    "kvbm_onboard_blocks_d2d": "counter",
    "kvbm_matched_tokens": "counter",
    "kvbm_host_cache_hit_rate": "gauge",
    "kvbm_disk_cache_hit_rate": "gauge",
}
SIM_TIERED = {"sim_kv_g3_fetch_seconds": "histogram", "sim_kv_g2_fetch_seconds": "histogram"}

# What KVBM itself exposes (Rust prometheus crate): counters without a _total suffix.
KVBM_WIRE = """\
# HELP kvbm_offload_blocks_d2h Device-to-host offload
# TYPE kvbm_offload_blocks_d2h counter
kvbm_offload_blocks_d2h 3200
# HELP kvbm_host_cache_hit_rate Host cache hit rate
# TYPE kvbm_host_cache_hit_rate gauge
kvbm_host_cache_hit_rate 0.75
"""


def families(text: str) -> dict[str, tuple[str, set[str]]]:
    return {
        f.name: (f.type, {s.name for s in f.samples}) for f in text_string_to_metric_families(text)
    }


def scrape(sim_cfg: dict, tmp_path: Path) -> str:
    async def scenario() -> str:
        async with running_sim(sim_cfg, tmp_path) as sim:
            await sim.generate(words(40), max_tokens=2)
            resp = await sim.http.get("/metrics")
            assert resp.headers["Content-Type"].startswith("text/plain")
            return await resp.text()

    return run(scenario())


def test_tiered_exposes_vllm_kvbm_and_sim_series(tmp_path: Path) -> None:
    text = scrape({"mode": "tiered", "g1_blocks": 64, "g2_blocks": 8, "g3_blocks": 8}, tmp_path)
    found = families(text)
    for name, kind in {**VLLM, **KVBM, **SIM_TIERED}.items():
        assert name in found, name
        assert found[name][0] == kind, (name, found[name])
    assert "vllm:kv_cache_usage_perc" in found["vllm:kv_cache_usage_perc"][1]
    assert "vllm:num_preemptions_total" in found["vllm:num_preemptions"][1]
    assert "vllm:prefix_cache_hits_total" in found["vllm:prefix_cache_hits"][1]
    assert "sim_kv_g3_fetch_seconds_sum" in found["sim_kv_g3_fetch_seconds"][1]
    assert "vllm:kv_cache_usage_perc{" in text  # the colon name is on the wire as is


def test_kvbm_counters_parse_like_kvbm_own_exposition(tmp_path: Path) -> None:
    ours = families(scrape({"mode": "tiered", "g1_blocks": 64, "g2_blocks": 8}, tmp_path))
    theirs = families(KVBM_WIRE)
    for name in theirs:
        assert ours[name] == theirs[name]


def test_stack_a_has_no_kvbm_series(tmp_path: Path) -> None:
    found = families(scrape({"mode": "uma", "g1_blocks": 64}, tmp_path))
    assert not [n for n in found if n.startswith("kvbm_")]
    assert set(VLLM) <= set(found)


def test_gauges_and_counters_follow_the_engine(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim({"mode": "tiered", "g1_blocks": 64}, tmp_path) as sim:
            await sim.generate(words(40), max_tokens=3)
            await sim.generate(words(40), max_tokens=3)
            m = await sim.metrics()
            assert m["vllm:num_requests_running"] == 0 and m["vllm:num_requests_waiting"] == 0
            assert m["vllm:kv_cache_usage_perc"] == 0.0  # cached blocks are reclaimable
            assert m["sim_kv_g1_total_blocks"] == 64  # G1's size: usage x this = blocks held
            assert m["vllm:prefix_cache_queries_total"] == 80
            assert m["vllm:generation_tokens_total"] == 6
            assert m["vllm:request_success_total"] == 2
            assert m["vllm:time_to_first_token_seconds_count"] == 2
            assert m["sim_engine_steps_total"] >= 6
            assert m["sim_engine_step_actual_seconds_total"] > 0

    run(scenario())
