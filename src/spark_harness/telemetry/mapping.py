"""Server metrics -> canonical ``kv_*`` fields, one table for every server family.

Real and simulated stacks name the same quantities differently (``docs/REFERENCE.md``); the
analysis reads only the canonical names. Prometheus text is parsed with
prometheus-client's parser and looked up by *family* name (the parser strips a counter's
``_total``), so ``kvbm_offload_blocks_d2h`` and ``..._total`` spellings both match.
Counters map their value, histograms and summaries their ``_sum`` and ``_count``
(fields ``<field>_sum``/``<field>_count``), gauges their value. Series of one family
with different labels (engines, ranks, models) are combined by the rule's ``agg``; when
two families of one exposition map to the same field (an old and a new name), the first
one counts.

TensorRT-LLM's ``/metrics`` is instead a JSON array of per-iteration stats, consumed on
read; :class:`TrtllmState` folds each poll into the same fields.

The simulator's own extras follow one rule rather than table rows: a family named
``sim_kv_<x>`` maps to ``kv_<x>``, any other ``sim_<x>`` (engine steps, LoRA loads,
rejections) keeps its name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from spark_harness.telemetry.sampler import Fields

#: the simulator's own series: ``sim_kv_<x>`` -> ``kv_<x>``, any other ``sim_<x>`` keeps
#: its name
SIM_PREFIX = "sim_"
SIM_KV_PREFIX = "sim_kv_"


@dataclass(frozen=True)
class Rule:
    """Where one metric family goes: a canonical field and how label series combine."""

    field: str
    agg: str = "sum"  # sum | mean | max


def _rules(agg: str, pairs: dict[str, str]) -> dict[str, Rule]:
    return {name: Rule(field, agg) for name, field in pairs.items()}


#: Prometheus family name (without ``_total``) -> rule. Sources: docs/REFERENCE.md, the
#: vLLM, Dynamo, KVBM and LMCache metric catalogues.
PROMETHEUS_RULES: dict[str, Rule] = {
    # vLLM-style engines (also the simulator and Dynamo's mocker)
    **_rules("mean", {
        "vllm:kv_cache_usage_perc": "kv_g1_usage",
        "vllm:gpu_cache_usage_perc": "kv_g1_usage",  # vLLM < 0.10
    }),
    **_rules("sum", {
        "vllm:num_requests_running": "kv_running",
        "vllm:num_requests_waiting": "kv_waiting",
        "vllm:prefix_cache_queries": "kv_prefix_queries_tokens",
        "vllm:prefix_cache_hits": "kv_prefix_hits_tokens",
        "vllm:gpu_prefix_cache_queries": "kv_prefix_queries_tokens",  # vLLM < 0.10
        "vllm:gpu_prefix_cache_hits": "kv_prefix_hits_tokens",
        "vllm:num_preemptions": "kv_preemptions",
        "vllm:time_to_first_token_seconds": "server_ttft_seconds",
    }),
    # KVBM (Dynamo's KV block manager); h2d/d2d names as docs/REFERENCE.md explains them
    **_rules("sum", {
        "kvbm_offload_blocks_d2h": "kv_offload_blocks_g1_g2",
        "kvbm_offload_blocks_h2d": "kv_offload_blocks_g2_g3",
        "kvbm_offload_blocks_d2d": "kv_offload_blocks_g1_g3",
        "kvbm_onboard_blocks_h2d": "kv_onboard_blocks_g2",
        "kvbm_onboard_blocks_d2d": "kv_onboard_blocks_g3",
        "kvbm_matched_tokens": "kv_matched_tokens",
    }),
    **_rules("mean", {
        "kvbm_host_cache_hit_rate": "kv_g2_hit_rate",
        "kvbm_disk_cache_hit_rate": "kv_g3_hit_rate",
    }),
    # vLLM's own KV offloading (its OffloadingConnector, config/stacks/vllm-tiered.yaml),
    # in bytes; the tiering families are labelled by secondary tier ("1:fs"), and the
    # stack has one, G3. The analysis turns bytes into blocks with the stack's block_bytes
    **_rules("sum", {
        "vllm:kv_offload_store_bytes": "kv_offload_bytes_g1_g2",
        "vllm:kv_offload_load_bytes": "kv_onboard_bytes_g2_g1",
        "vllm:kv_offload_tiering_write_bytes": "kv_offload_bytes_g2_g3",
        "vllm:kv_offload_tiering_read_bytes": "kv_onboard_bytes_g3_g2",
    }),
    # Dynamo worker (system port): ``name_prefix.COMPONENT`` + the ``kvstats`` and
    # ``work_handler`` names of ai-dynamo 1.6.1's ``dynamo/prometheus_names.py``; a
    # TensorRT-LLM worker publishes the KV stats only with ``--publish-metrics``
    **_rules("mean", {
        "dynamo_component_gpu_cache_usage_percent": "kv_g1_usage",
        "dynamo_component_kv_cache_hit_rate": "kv_g1_prefix_hit_rate",
    }),
    **_rules("sum", {
        "dynamo_component_total_blocks": "kv_g1_total_blocks",
        "dynamo_component_inflight_requests": "server_inflight",
    }),
    # Dynamo frontend
    **_rules("sum", {
        "dynamo_frontend_inflight_requests": "frontend_inflight",
        "dynamo_frontend_queued_requests": "frontend_queued",
        "dynamo_frontend_time_to_first_token_seconds": "frontend_ttft_seconds",
        "dynamo_frontend_inter_token_latency_seconds": "frontend_itl_seconds",
        "dynamo_frontend_cached_tokens": "frontend_cached_tokens",
        "dynamo_frontend_input_sequence_tokens": "frontend_input_tokens",
    }),
    **_rules("max", {
        "dynamo_frontend_model_total_kv_blocks": "kv_g1_total_blocks",
        "dynamo_frontend_model_kv_cache_block_size": "kv_block_tokens",
    }),
    # LMCache (an external KV tier next to vLLM)
    **_rules("sum", {
        "lmcache:num_hit_tokens": "kv_lmcache_hit_tokens",
        "lmcache:num_requested_tokens": "kv_lmcache_requested_tokens",
        "lmcache:time_to_retrieve": "kv_lmcache_retrieve_seconds",
        "lmcache:local_storage_usage": "kv_lmcache_storage_bytes",
    }),
    **_rules("mean", {"lmcache:retrieve_hit_rate": "kv_lmcache_hit_rate"}),
}  # fmt: skip

_AGG: dict[str, Callable[[list[float]], float]] = {"sum": sum, "mean": fmean, "max": max}


def rule_for(family: str) -> Rule | None:
    """The rule for a family name (with or without ``_total``), or ``None`` if unmapped."""
    name = family.removesuffix("_total")
    rule = PROMETHEUS_RULES.get(name)
    if rule is None and name.startswith(SIM_PREFIX) and not name.endswith("_created"):
        kv = name.startswith(SIM_KV_PREFIX)
        rule = Rule("kv_" + name.removeprefix(SIM_KV_PREFIX) if kv else name)
    return rule


#: sample names a rule reads: a gauge's or counter's value (with or without _total), a
#: histogram's _sum and _count; never buckets
_WANTED = frozenset(n + sfx for n in PROMETHEUS_RULES for sfx in ("", "_total", "_sum", "_count"))
# a label set, with quoted values that may hold braces or escaped quotes
_LABELS = re.compile(r'\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\}')


def _wanted(name: str) -> bool:
    return name in _WANTED or (
        name.startswith(SIM_PREFIX) and not name.endswith(("_bucket", "_created"))
    )


def relevant_lines(text: str) -> str:
    """The exposition reduced to the samples the table maps, without label sets, and the
    TYPE lines of their histograms and summaries.

    A vLLM server's exposition is mostly histogram buckets and process/Python families
    that map to no field, and most of the parser's time goes into label sets and TYPE
    lines. No rule uses labels (series of a family are combined whatever their labels),
    and only a histogram's or summary's TYPE matters (it groups ``_sum`` and ``_count``
    and tells a summary's quantiles from a value); a counter or gauge maps by its sample
    name. Parsing only the rest keeps the sidecar within its CPU budget at a 200 ms
    cadence (benchmarks/bench_sidecar.py).
    """
    keep = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            if kind.strip() in ("histogram", "summary") and _wanted(name):
                keep.append(line)
        elif line and line[0] != "#" and _wanted(line.split("{", 1)[0].split(" ", 1)[0]):
            keep.append(line)
    return _LABELS.sub("", "\n".join(keep)) + "\n"


def map_prometheus(text: str) -> Fields:
    """Canonical fields from one Prometheus exposition (unmapped families are ignored)."""
    series: dict[str, tuple[str, list[float]]] = {}  # field -> (agg, values of its series)
    claimed: dict[str, str] = {}  # field -> family: an alias exposed too never counts twice
    for family in text_string_to_metric_families(relevant_lines(text)):
        rule = rule_for(family.name)
        if rule is None or claimed.setdefault(rule.field, family.name) != family.name:
            continue
        # a distribution gives its _sum and _count (never buckets or quantiles), any
        # other family its value
        distribution = family.type in ("histogram", "summary")
        wanted = ("_sum", "_count") if distribution else ("",)
        for s in family.samples:
            suffix = s.name.removeprefix(family.name) if distribution else ""
            if suffix in wanted:
                series.setdefault(rule.field + suffix, (rule.agg, []))[1].append(s.value)
    # NaN or ±Inf in any series of a field makes the field unknown (left out: missing,
    # never a number every sum and mean after it would carry, nor non-standard JSON)
    return {
        field: _AGG[agg](values)
        for field, (agg, values) in series.items()
        if all(math.isfinite(v) for v in values)
    }


class TrtllmState:
    """Folds TensorRT-LLM iteration stats (``/metrics`` JSON array) into canonical fields.

    Each poll returns the iterations since the last poll. Gauges come from the newest
    iteration of the poll; ``kvCacheStats`` block counts (``reusedBlocks``,
    ``missedBlocks``) are cumulative in TensorRT-LLM, so prefix traffic in tokens is
    blocks x ``tokensPerBlock``. A poll with no iterations (idle engine) keeps the last
    cumulative and KV-block values, which cannot change without an iteration, and
    reports no request gauges.

    The endpoint hands each entry out once: entries a read took but never delivered (a
    client timeout) or that overflowed the engine's stats queue are gone. Iterations are
    numbered, so every gap after the first entry seen is counted in
    ``server_iter_stats_lost`` (cumulative): a sample then says what it misses.
    """

    _CARRIED = (
        "kv_prefix_hits_tokens",
        "kv_prefix_queries_tokens",
        "kv_g1_usage",
        "kv_g1_active_blocks",
        "kv_g1_total_blocks",
        "kv_g1_prefix_hit_rate",
        "kv_block_tokens",
        "server_iterations",
        "server_iter_stats_lost",
    )

    def __init__(self) -> None:
        self._carried: Fields = {}
        self._last_iter: int | None = None
        self._lost = 0

    def _count_lost(self, entries: list[dict[str, Any]]) -> None:
        """Add the iteration numbers missing since the last entry seen."""
        for it in sorted(e["iter"] for e in entries if "iter" in e):
            if self._last_iter is not None and it > self._last_iter + 1:
                self._lost += it - self._last_iter - 1
            if self._last_iter is None or it > self._last_iter:
                self._last_iter = it

    def update(self, entries: list[dict[str, Any]]) -> Fields:
        if not isinstance(entries, list):
            raise ValueError(f"TensorRT-LLM /metrics should be a JSON array, got {type(entries)}")
        if not entries:
            return dict(self._carried)
        self._count_lost(entries)
        last = max(entries, key=lambda e: e.get("iter", 0))
        out: Fields = {"server_iter_stats_lost": self._lost}
        for key, field in (
            ("numActiveRequests", "kv_running"),
            ("numQueuedRequests", "kv_waiting"),
            ("gpuMemUsage", "server_gpu_mem_bytes"),
        ):
            if key in last:
                out[field] = last[key]
        if "iter" in last:
            out["server_iterations"] = last["iter"] + 1  # iter counts from 0
        lat = [e["iterLatencyMS"] for e in entries if "iterLatencyMS" in e]
        if lat:
            out["server_iter_latency_ms"] = fmean(lat)
        kv = last.get("kvCacheStats") or {}
        tpb = kv.get("tokensPerBlock")
        if kv.get("maxNumBlocks"):
            out["kv_g1_usage"] = kv.get("usedNumBlocks", 0) / kv["maxNumBlocks"]
            out["kv_g1_total_blocks"] = kv["maxNumBlocks"]
        if "usedNumBlocks" in kv:
            out["kv_g1_active_blocks"] = kv["usedNumBlocks"]
        if "cacheHitRate" in kv:
            out["kv_g1_prefix_hit_rate"] = kv["cacheHitRate"]
        if tpb and "reusedBlocks" in kv:
            out["kv_prefix_hits_tokens"] = kv["reusedBlocks"] * tpb
            out["kv_prefix_queries_tokens"] = (kv["reusedBlocks"] + kv.get("missedBlocks", 0)) * tpb
        if tpb:
            out["kv_block_tokens"] = tpb
        self._carried = {k: v for k, v in out.items() if k in self._CARRIED}
        return out
