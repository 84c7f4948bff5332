"""Server metrics of every family -> canonical fields, on expositions as each server
writes them (vLLM, Dynamo frontend and worker, KVBM, LMCache, the simulator,
TensorRT-LLM's JSON iteration stats)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from spark_harness.contract import TELEMETRY_FIELD_DOC
from spark_harness.telemetry.mapping import (
    PROMETHEUS_RULES,
    SIM_PREFIX,
    TrtllmState,
    map_prometheus,
    relevant_lines,
    rule_for,
)

FIX = Path(__file__).parent / "fixtures"
OFFLOAD = "kv_offload"  # vLLM's offloading families (tiered stacks only)


def _engine_rules() -> set[str]:
    """The current vLLM families every engine exports (not the pre-0.10 ``gpu_`` names,
    not the offloading families of a tiered engine)."""
    return {
        n
        for n in PROMETHEUS_RULES
        if n.startswith("vllm:") and "gpu_" not in n and OFFLOAD not in n
    }


def _map(name: str) -> dict[str, float]:
    return map_prometheus((FIX / name).read_text())


def test_vllm_engines_are_combined_per_rule() -> None:
    assert _map("vllm.prom") == pytest.approx(
        {
            "kv_running": 5.0,  # two engines summed
            "kv_waiting": 4.0,
            "kv_g1_usage": 0.5,  # a share: averaged
            "kv_prefix_queries_tokens": 12288.0,
            "kv_prefix_hits_tokens": 5120.0,  # the deprecated alias is not added again
            "kv_preemptions": 8.0,
            "server_ttft_seconds_sum": 1.75,
            "server_ttft_seconds_count": 16.0,
        }
    )


def test_a_non_finite_value_makes_its_field_unknown_not_a_number() -> None:
    """NaN or Inf from a server would be written as non-standard JSON and carried into
    every sum and mean: the field is left out (missing), the others are kept."""
    text = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0"} 2\n'
        'vllm:num_requests_running{engine="1"} NaN\n'
        "# TYPE vllm:num_requests_waiting gauge\n"
        "vllm:num_requests_waiting +Inf\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\n"
        "vllm:kv_cache_usage_perc 0.25\n"
    )
    assert map_prometheus(text) == {"kv_g1_usage": 0.25}


def test_a_real_vllm_cpu_exposition() -> None:
    """vllm_cpu_0.32.0.prom was captured from vLLM 0.32.0 on the CPU (the vllm-cpu stack
    serving the tiny model, after 5 completions, 1,152 of 1,906 prompt tokens found in
    its prefix cache): every vLLM rule's family is there under the name it maps, with
    the labels (engine, model_name) the rules combine over."""
    text = (FIX / "vllm_cpu_0.32.0.prom").read_text()
    families = {f.name for f in text_string_to_metric_families(text)}
    current = _engine_rules()
    assert sorted(current - families) == []  # none renamed or dropped by this release
    assert _map("vllm_cpu_0.32.0.prom") == pytest.approx(
        {
            "kv_running": 0.0,
            "kv_waiting": 0.0,
            "kv_g1_usage": 0.0,
            "kv_prefix_queries_tokens": 1906.0,
            "kv_prefix_hits_tokens": 1152.0,
            "kv_preemptions": 0.0,
            "server_ttft_seconds_count": 5.0,
            "server_ttft_seconds_sum": 0.13312339782714844,
        }
    )


def test_vllms_tiered_offloading_rendered_by_vllm_itself() -> None:
    """vllm_offload_tiering_0.31.0.prom is vLLM 0.31's own Prometheus classes rendering
    its own stats objects for a known traffic (tools/render_vllm_offload_metrics.py: 40
    chunks of 65,536 B stored GPU -> host, 12 loaded back, 30 cascaded to the fs tier, 5
    promoted from it): every offload rule's family is there, counters in bytes, the
    tiering ones labelled by tier, and each maps to its traffic."""
    text = (FIX / "vllm_offload_tiering_0.31.0.prom").read_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    offload = {n for n in PROMETHEUS_RULES if OFFLOAD in n}
    assert len(offload) == 4 and sorted(offload - set(families)) == []
    assert all(families[n].type == "counter" for n in offload)
    tiers = {s.labels.get("tier") for s in families["vllm:kv_offload_tiering_read_bytes"].samples}
    assert tiers == {"1:fs"}
    chunk = 65536
    assert _map("vllm_offload_tiering_0.31.0.prom") == pytest.approx(
        {
            "kv_offload_bytes_g1_g2": 40 * chunk,
            "kv_onboard_bytes_g2_g1": 12 * chunk,
            "kv_offload_bytes_g2_g3": 30 * chunk,
            "kv_onboard_bytes_g3_g2": 5 * chunk,
        }
    )


def test_dynamo_frontend() -> None:
    assert _map("dynamo_frontend.prom") == pytest.approx(
        {
            "frontend_inflight": 5,
            "frontend_queued": 2,
            "frontend_ttft_seconds_sum": 2.5,
            "frontend_ttft_seconds_count": 40,
            "frontend_itl_seconds_sum": 4.2,
            "frontend_itl_seconds_count": 600,
            "frontend_cached_tokens_sum": 5120,
            "frontend_cached_tokens_count": 40,
            "frontend_input_tokens_sum": 40960,
            "frontend_input_tokens_count": 40,
            "kv_g1_total_blocks": 256,
            "kv_block_tokens": 16,
        }
    )


def test_dynamo_worker_kv_stats() -> None:
    assert _map("dynamo_worker.prom") == pytest.approx(
        {
            "server_inflight": 3,
            "kv_g1_total_blocks": 512,
            "kv_g1_usage": 0.25,
            "kv_g1_prefix_hit_rate": 0.375,
        }
    )


def test_real_dynamo_expositions_in_front_of_vllm_on_the_cpu() -> None:
    """Captured from ai-dynamo 1.6.1 (the dynamo-vllm-cpu stack: the frontend on its HTTP
    port, ``dynamo.vllm`` on its system port) after 5 completions of one 156-token
    prompt, 4 of them finding 128 tokens in the prefix cache: the worker's system port
    serves vLLM's own series (``model_name`` labels) beside Dynamo's component series,
    and both sides count the same cached tokens."""
    worker_text = (FIX / "dynamo_vllm_worker_1.6.1_cpu.prom").read_text()
    families = {f.name for f in text_string_to_metric_families(worker_text)}
    vllm_rules = _engine_rules()
    assert sorted(vllm_rules - families) == []
    worker = _map("dynamo_vllm_worker_1.6.1_cpu.prom")
    assert worker == pytest.approx(
        {
            "server_inflight": 0.0,
            "kv_g1_total_blocks": 8192.0,  # 1 GiB of KV in 32-token blocks
            "kv_g1_usage": 0.0,
            "kv_running": 0.0,
            "kv_waiting": 0.0,
            "kv_prefix_queries_tokens": 780.0,
            "kv_prefix_hits_tokens": 512.0,
            "kv_preemptions": 0.0,
            "server_ttft_seconds_count": 5.0,
            "server_ttft_seconds_sum": 1.6255571842193604,
        }
    )
    frontend = _map("dynamo_frontend_1.6.1_vllm_cpu.prom")
    assert frontend == pytest.approx(
        {
            "frontend_cached_tokens_sum": 512,
            "frontend_cached_tokens_count": 5,
            "frontend_inflight": 0,
            "frontend_queued": 0,
            "frontend_input_tokens_sum": 780,
            "frontend_input_tokens_count": 5,
            "frontend_itl_seconds_sum": 0.182111717,
            "frontend_itl_seconds_count": 35,  # 7 gaps in each of 5 8-token replies
            "frontend_ttft_seconds_sum": 1.6541242980000002,
            "frontend_ttft_seconds_count": 5,
            "kv_block_tokens": 32,
            "kv_g1_total_blocks": 8192,
        }
    )
    # one request, two counters of it: the frontend's and the engine's
    assert frontend["frontend_cached_tokens_sum"] == worker["kv_prefix_hits_tokens"]
    assert frontend["frontend_input_tokens_sum"] == worker["kv_prefix_queries_tokens"]


def _dynamo_names() -> set[str]:
    """Every full metric name ai-dynamo's installed ``prometheus_names`` defines for the
    families the table maps: worker (component prefix), frontend, KVBM."""
    names = pytest.importorskip("dynamo.prometheus_names")  # tools/install_dynamo.sh

    def consts(cls: type) -> set[str]:
        return {v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}

    component = names.name_prefix.COMPONENT
    frontend = names.name_prefix.FRONTEND
    return (
        {f"{component}_{n}" for n in consts(names.kvstats) | consts(names.work_handler)}
        | {f"{frontend}_{n}" for n in consts(names.frontend_service)}
        | {f"kvbm_{n}" for n in consts(names.kvbm)}
    )


def test_dynamo_and_kvbm_rules_name_metrics_the_installed_wheels_define() -> None:
    defined = _dynamo_names()
    ours = {n for n in PROMETHEUS_RULES if n.startswith(("dynamo_", "kvbm_"))}
    assert sorted(ours - defined) == []
    # every KV stat a 1.6.1 worker publishes is mapped
    names = pytest.importorskip("dynamo.prometheus_names")
    kvstats = {v for k, v in vars(names.kvstats).items() if k.isupper()}
    assert {f"dynamo_component_{n}" for n in kvstats} <= set(PROMETHEUS_RULES)
    assert rule_for("dynamo_component_kv_cache_hit_rate").field == "kv_g1_prefix_hit_rate"


def test_kvbm_counters_without_total_suffix() -> None:
    assert _map("kvbm.prom") == {
        "kv_matched_tokens": 4096,
        "kv_offload_blocks_g1_g2": 120,
        "kv_offload_blocks_g2_g3": 48,
        "kv_offload_blocks_g1_g3": 0,
        "kv_onboard_blocks_g2": 30,
        "kv_onboard_blocks_g3": 12,
        "kv_g2_hit_rate": 0.6,
        "kv_g3_hit_rate": 0.25,
    }


def test_lmcache() -> None:
    assert _map("lmcache.prom") == pytest.approx(
        {
            "kv_lmcache_hit_tokens": 3000,
            "kv_lmcache_requested_tokens": 8000,
            "kv_lmcache_hit_rate": 0.375,
            "kv_lmcache_retrieve_seconds_sum": 0.9,
            "kv_lmcache_retrieve_seconds_count": 12,
            "kv_lmcache_storage_bytes": 1 << 30,
        }
    )


def test_simulator_names_and_its_own_extras() -> None:
    assert _map("sim.prom") == pytest.approx(
        {
            "kv_running": 8,
            "kv_waiting": 3,
            "kv_g1_usage": 0.96875,
            "kv_offload_blocks_g1_g2": 640,
            "kv_offload_blocks_g2_g3": 384,
            "kv_onboard_blocks_g2": 96,
            "kv_onboard_blocks_g3": 200,
            "kv_g3_fetch_seconds_sum": 0.16,
            "kv_g3_fetch_seconds_count": 20,
            "kv_g3_read_bytes": 16 << 20,
            "sim_engine_steps": 1234,
            "sim_lora_read_bytes": 4 << 20,
            "sim_engine_step_lag_seconds_sum": 0.617,
            "sim_engine_step_lag_seconds_count": 1234,
        }
    )


def test_untyped_exposition_still_maps() -> None:
    # a server that writes no TYPE lines: the parser sees the raw sample names
    text = "kvbm_onboard_blocks_d2d_total 5\nvllm:num_requests_running 2\nunknown_metric 1\n"
    assert map_prometheus(text) == {"kv_onboard_blocks_g3": 5, "kv_running": 2}


def test_malformed_exposition_is_an_error_not_a_silent_zero() -> None:
    with pytest.raises(ValueError):
        map_prometheus("vllm:num_requests_running{engine=0 3\n")


def test_trtllm_iteration_stats_polls() -> None:
    polls = json.loads((FIX / "trtllm_polls.json").read_text())
    state = TrtllmState()
    first = state.update(polls[0])
    assert first == pytest.approx(
        {
            "kv_running": 1,  # from the newest iteration of the poll
            "kv_waiting": 0,
            "server_gpu_mem_bytes": 76665782272,
            "server_iterations": 155,
            "server_iter_latency_ms": 7.0,  # mean over the poll's iterations
            "kv_g1_usage": 3 / 101256,
            "kv_g1_total_blocks": 101256,
            "kv_g1_active_blocks": 3,
            "kv_g1_prefix_hit_rate": 0.00128,
            "kv_prefix_hits_tokens": 4 * 32,
            "kv_prefix_queries_tokens": (4 + 3121) * 32,
            "kv_block_tokens": 32,
            "server_iter_stats_lost": 0,
        }
    )
    # an idle engine reports no iterations: cumulative and block state carry over,
    # request gauges are not invented
    idle = state.update(polls[1])
    assert "kv_running" not in idle and "server_iter_latency_ms" not in idle
    assert idle["kv_prefix_hits_tokens"] == 128 and idle["server_iterations"] == 155
    third = state.update(polls[2])
    assert third["kv_running"] == 4 and third["kv_prefix_queries_tokens"] == 3200 * 32
    assert third["server_iter_stats_lost"] == 5  # iterations 155-159 never arrived


def test_trtllm_body_that_is_not_an_array_is_rejected() -> None:
    with pytest.raises(ValueError, match="JSON array"):
        TrtllmState().update({"error": "stats disabled"})  # type: ignore[arg-type]


def _documented(field: str) -> bool:
    """Named in the contract; the catch-alls of simulator extras do not count."""
    for doc in TELEMETRY_FIELD_DOC:
        if doc in ("kv_<x>", "sim_<x>"):
            continue
        if re.match("^" + re.sub(r"<[a-z]+>", "[A-Za-z0-9_]+", doc) + "$", field):
            return True
    return False


def _sim_extras() -> set[str]:
    """Fields the sim_<x> rule gives for the simulator fixture."""
    out = set()
    for family in text_string_to_metric_families((FIX / "sim.prom").read_text()):
        rule = rule_for(family.name)
        if family.name.startswith(SIM_PREFIX) and rule is not None:
            out |= {rule.field, rule.field + "_sum", rule.field + "_count"}
    return out


def test_fixtures_produce_only_documented_fields() -> None:
    fields = set()
    for fixture in FIX.glob("*.prom"):
        fields |= set(map_prometheus(fixture.read_text()))
    for poll in json.loads((FIX / "trtllm_polls.json").read_text()):
        fields |= set(TrtllmState().update(poll))
    assert sorted(f for f in fields - _sim_extras() if not _documented(f)) == []


def test_every_rule_maps_to_a_documented_field() -> None:
    for name, rule in PROMETHEUS_RULES.items():
        assert _documented(rule.field) or _documented(rule.field + "_sum"), name


def test_rule_lookup_ignores_total_suffix_and_knows_the_sim_prefix() -> None:
    assert rule_for("vllm:prefix_cache_hits_total") == rule_for("vllm:prefix_cache_hits")
    assert rule_for("sim_kv_g3_fetch_seconds").field == "kv_g3_fetch_seconds"
    assert rule_for("sim_lora_loads_total").field == "sim_lora_loads"
    assert rule_for("sim_lora_loads_created") is None
    assert rule_for("process_cpu_seconds") is None


def test_label_values_with_braces_quotes_and_timestamps() -> None:
    text = (
        "# HELP vllm:num_requests_running Running {requests}\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="a}b\\"c{",engine="0"} 3 1700000000000\n'
        'vllm:num_requests_running{model_name="x y",engine="1"} 2\n'
        "# TYPE kvbm_onboard_blocks_d2d counter\n"
        "kvbm_onboard_blocks_d2d 4e+01\n"
    )
    assert map_prometheus(text) == {"kv_running": 5, "kv_onboard_blocks_g3": 40}


def test_only_mapped_lines_reach_the_parser() -> None:
    text = (FIX / "vllm.prom").read_text()
    kept = relevant_lines(text).splitlines()
    assert not any("_bucket" in line or line.startswith("# HELP") for line in kept)
    assert not any("{" in line for line in kept)  # label sets are not parsed
    assert any(line.startswith("vllm:prefix_cache_hits_total ") for line in kept)
    # of 50 lines: 18 samples of mapped families and the TYPE line of their histogram
    assert len(kept) == 19
    assert [k for k in kept if k.startswith("#")] == [
        "# TYPE vllm:time_to_first_token_seconds histogram"
    ]


def test_a_summary_maps_its_sum_and_count_not_its_quantiles() -> None:
    text = (
        "# TYPE lmcache:time_to_retrieve summary\n"
        'lmcache:time_to_retrieve{quantile="0.5"} 0.01\n'
        'lmcache:time_to_retrieve{quantile="0.99"} 0.2\n'
        "lmcache:time_to_retrieve_sum 0.9\n"
        "lmcache:time_to_retrieve_count 12\n"
    )
    assert map_prometheus(text) == {
        "kv_lmcache_retrieve_seconds_sum": 0.9,
        "kv_lmcache_retrieve_seconds_count": 12,
    }
