"""``/metrics``: the engine's state under the names the real servers use.

Engine gauges and counters follow vLLM (``vllm:*``), tier counters follow KVBM
(``kvbm_*``, tiered mode only, as only Stack B runs KVBM); ``sim_*`` series exist only
here. Counters and gauges are read from the engine at scrape time by a custom
collector (nothing is updated per token); latency distributions are prometheus-client
histograms fed as events happen.

On the wire prometheus-client writes counters with a ``_total`` suffix; parsed with
``prometheus_client.parser`` they give the same families and sample names as vLLM's
and KVBM's own expositions (``kvbm_offload_blocks_d2h`` -> family
``kvbm_offload_blocks_d2h``, sample ``kvbm_offload_blocks_d2h_total``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from spark_harness.sim.engine import Engine

_FETCH_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_LATENCY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)


class _EngineCollector:
    def __init__(self, engine: Engine, model: str) -> None:
        self.engine = engine
        self.labels = {"model_name": model}

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=list(self.labels))
        g.add_metric(list(self.labels.values()), value)
        return g

    def _counter(self, name: str, doc: str, value: float) -> CounterMetricFamily:
        c = CounterMetricFamily(name, doc, labels=list(self.labels))
        c.add_metric(list(self.labels.values()), value)
        return c

    def collect(self) -> Iterator[Metric]:
        e = self.engine
        kv = e.kv
        st = kv.stats
        g, c = self._gauge, self._counter
        yield g(
            "vllm:kv_cache_usage_perc",
            "G1 KV-cache usage (1 = full).",
            kv.pool.used() / kv.pool.capacity,
        )
        yield g(
            "sim_kv_g1_total_blocks",
            "G1 KV-cache blocks configured (TensorRT-LLM's maxNumBlocks).",
            kv.pool.capacity,
        )
        yield g(
            "vllm:num_requests_running",
            "Sequences in the batch (incl. onboarding).",
            len(e.running) + len(e.loading),
        )
        yield g("vllm:num_requests_waiting", "Sequences waiting for admission.", len(e.waiting))
        yield c(
            "vllm:prefix_cache_queries",
            "Prompt tokens looked up in the prefix cache.",
            st.prefix_queries_tokens,
        )
        yield c("vllm:prefix_cache_hits", "Prompt tokens found in G1.", st.prefix_hits_tokens)
        yield c("vllm:num_preemptions", "Preemptions (recompute).", e.stats.preemptions)
        yield c("vllm:request_success", "Requests finished (length or stop).", e.stats.finished)
        yield c("vllm:prompt_tokens", "Prefilled prompt tokens.", e.stats.prompt_tokens)
        yield c("vllm:generation_tokens", "Generated tokens.", e.stats.generated_tokens)
        if e.cfg.tiered:
            yield c("kvbm_offload_blocks_d2h", "Blocks offloaded G1 -> G2.", st.offload_g1_g2)
            yield c(
                "kvbm_offload_blocks_h2d",
                "Blocks offloaded G2 -> G3 (host to disk).",
                st.offload_g2_g3,
            )
            yield c("kvbm_offload_blocks_d2d", "Blocks offloaded G1 -> G3.", st.offload_g1_g3)
            yield c("kvbm_onboard_blocks_h2d", "Blocks onboarded G2 -> G1.", st.onboard_g2)
            yield c("kvbm_onboard_blocks_d2d", "Blocks onboarded G3 -> G1.", st.onboard_g3)
            yield c("kvbm_matched_tokens", "Prompt tokens found in G2 or G3.", st.matched_tokens)
            host, disk = kv.hits.rates()
            yield g(
                "kvbm_host_cache_hit_rate",
                "Share of recent beyond-G1 block lookups found in G2.",
                host,
            )
            yield g(
                "kvbm_disk_cache_hit_rate",
                "Share of recent beyond-G1 block lookups found in G3.",
                disk,
            )
            yield g(
                "sim_kv_g2_usage_perc",
                "G2 usage (1 = full).",
                kv.g2.usage() if kv.g2 is not None else 0.0,
            )
            yield g(
                "sim_kv_g3_usage_perc",
                "G3 usage (1 = full).",
                kv.g3.usage() if kv.g3 is not None else 0.0,
            )
            yield c("sim_kv_dropped_blocks", "Blocks evicted from the last tier.", st.dropped)
            yield c(
                "sim_kv_filtered_blocks", "Blocks the disk offload filter kept off G3.", st.filtered
            )
            yield c("sim_kv_g3_read_bytes", "Bytes read from the G3 file.", st.g3_read_bytes)
            yield c("sim_kv_g3_write_bytes", "Bytes written to the G3 file.", st.g3_write_bytes)
            yield c("sim_kv_g3_io_errors", "Failed G3 reads or writes.", st.g3_io_errors)
            yield g(
                "sim_kv_g3_direct_io",
                "1 if G3 uses O_DIRECT, 0 if buffered.",
                1.0 if kv.file is not None and kv.file.direct else 0.0,
            )
        yield c("sim_engine_steps", "Engine steps.", e.stats.steps)
        yield c(
            "sim_engine_step_modeled_seconds", "Sum of modeled step times.", e.stats.step_modeled_s
        )
        yield c(
            "sim_engine_step_actual_seconds", "Sum of measured step times.", e.stats.step_actual_s
        )
        yield c(
            "sim_requests_rejected", "Requests rejected by admission control.", e.stats.rejected
        )
        if e.pager is not None:
            ps = e.pager.stats
            yield c("sim_paging_faults", "KV blocks paged in from the swap file.", ps.faults)
            yield c("sim_paging_pages_in", "4 KiB pages read from the swap file.", ps.pages_in)
            yield c("sim_paging_pages_out", "4 KiB pages written to the swap file.", ps.pages_out)
            yield c(
                "sim_paging_fault_seconds", "Time engine steps waited for paging.", ps.fault_seconds
            )
            yield g("sim_paging_resident_blocks", "G1 blocks in memory.", e.pager.resident)
            yield g("sim_paging_swapped_blocks", "G1 blocks only in swap.", e.pager.swapped)
        if e.lora is not None:
            yield c("sim_lora_loads", "LoRA adapter loads from disk.", e.lora.loads)
            yield c("sim_lora_read_bytes", "Bytes read loading LoRA adapters.", e.lora.bytes_read)
            yield g("sim_lora_resident", "Resident LoRA adapters.", len(e.lora.resident))


class SimMetrics:
    """The registry behind one simulator's ``/metrics``."""

    def __init__(self, engine: Engine, model: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_EngineCollector(engine, model))
        labels = ["model_name"]

        def hist(name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
            h = Histogram(name, doc, labels, buckets=buckets, registry=self.registry)
            return h.labels(model)  # type: ignore[return-value]

        self._hist = {
            "ttft": hist(
                "vllm:time_to_first_token_seconds",
                "Arrival to first token, server side.",
                _LATENCY_BUCKETS,
            ),
            "step_lag": hist(
                "sim_engine_step_lag_seconds",
                "How late each step's tokens were delivered.",
                _FETCH_BUCKETS,
            ),
        }
        if engine.cfg.tiered:
            self._hist["g2"] = hist(
                "sim_kv_g2_fetch_seconds",
                "Onboard time from G2 per request (modeled).",
                _FETCH_BUCKETS,
            )
            self._hist["g3"] = hist(
                "sim_kv_g3_fetch_seconds",
                "Onboard time from G3 per request (measured I/O).",
                _FETCH_BUCKETS,
            )
        if engine.lora is not None:
            self._hist["lora"] = hist(
                "sim_lora_load_seconds", "LoRA adapter load time (measured read).", _FETCH_BUCKETS
            )
            engine.lora.observe_load = lambda s: self._hist["lora"].observe(s)
        engine.observe = self.observe
        engine.kv.observe_fetch = self.observe

    def observe(self, name: str, value: float) -> None:
        hist = self._hist.get(name)
        if hist is not None:
            hist.observe(max(0.0, value))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
