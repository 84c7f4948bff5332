"""The data contract between the processes of one measured point.

Per point and repetition the workflow writes, under
``results/raw/{hyp}/{stack}/{point}/r{rep}/``:

- ``requests.jsonl``: one :data:`REQUEST_FIELDS` object per request;
- ``telemetry.jsonl``: one object per sample (``kind: "sample"``: ``t_ns`` plus canonical
  fields, see :data:`TELEMETRY_FIELD_DOC`) and, once per missing source, an object with
  ``kind: "unavailable"``, ``source`` and ``reason``;
- ``run.json``: see :data:`RUN_KEYS`. It is written last: its presence marks the point
  complete.

Two small files connect the processes of a point while it runs (both are Snakemake
``service()`` outputs, removed when the point is done):

- the **endpoint file** (:class:`Endpoint`), written by ``server_up`` as soon as it has
  chosen its port, before the server is ready;
- the **sidecar file** (:class:`SidecarInfo`), written by ``telemetry_sidecar`` as soon as
  it starts; its first sample follows in the spool, and the consumer waits for that
  sample before it measures anything (``telemetry.window.wait_sampling``).

All timestamps are integer nanoseconds since the epoch (see :mod:`spark_harness.clock`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_harness.files import write_json

#: Phases a request can belong to. Only ``load`` (and, for H9, ``replay``) are analysed
#: as the measurement window; the others are recorded and excluded.
PHASES = ("idle", "warmup", "load", "cooldown", "populate", "thrash", "replay")

#: Fields of one line of ``requests.jsonl`` and their types (polars dtype names).
#: ``None`` is allowed for every field except the ids, ``phase`` and ``ok``.
REQUEST_FIELDS: dict[str, str] = {
    "request_id": "String",  # unique within the run
    "user_id": "Int64",  # closed-loop user slot, or null for open loop
    "session_id": "String",  # chat session / H9 session, else null
    "turn": "Int64",  # turn within the session, from 0
    "adapter": "String",  # LoRA adapter name, else null
    "phase": "String",  # one of PHASES
    "scheduled_ns": "Int64",  # when the schedule said to send (open loop / trace), else null
    "ready_ns": "Int64",  # when the request was due and started waiting for a slot
    "sent_ns": "Int64",  # just before the HTTP request was written
    "sent_bound_ms": "Float64",  # sent_ns may be this much early (docs/LOADGEN.md)
    "first_token_ns": "Int64",  # first byte of the first SSE event with non-empty content
    "first_token_bound_ms": "Float64",  # first_token_ns may be this much late (docs/LOADGEN.md)
    "done_ns": "Int64",  # last content event (or the error)
    "ttft_ms": "Float64",  # first_token - sent
    "tpot_ms": "Float64",  # (e2e - ttft) / (completion_tokens - 1), tokens > 1
    "e2e_ms": "Float64",  # done - sent
    "queue_ms": "Float64",  # sent - ready: client-side wait for a slot or connection
    "e2e_incl_queue_ms": "Float64",  # done - ready
    "schedule_lag_ms": "Float64",  # sent - scheduled (open loop / trace), else null
    "event_offsets_ms": "List(Float64)",  # each content event's arrival, from sent
    "event_tokens": "List(Int64)",  # tokens carried by each content event
    "prompt_tokens": "Int64",  # as the server reported (usage)
    "completion_tokens": "Int64",  # as the server reported (usage)
    "prompt_tokens_client": "Int64",  # as the client built/counted them
    "completion_tokens_client": "Int64",  # content events' tokens as the client counted
    "cached_tokens": "Int64",  # usage.prompt_tokens_details.cached_tokens
    "kv_g3_fetch_ms": "Float64",  # server-reported NVMe fetch time (simulator only)
    "kv_g3_onboard_blocks": "Int64",  # server-reported blocks onboarded from G3 (sim only)
    "status": "Int64",  # HTTP status, null if no response
    "ok": "Boolean",  # completed with content and no error
    "error_kind": "String",  # http | bad_sse | reset | timeout | connect | rejected | other
    "error": "String",  # human-readable reason
}

#: Canonical telemetry fields (one flat namespace, so real and simulated stacks share
#: one analysis). Counters are cumulative totals as the source reports them; gauges are
#: instantaneous; ``disk_*`` and ``*_per_s`` are rates over the preceding interval.
TELEMETRY_FIELD_DOC: dict[str, str] = {
    "t_ns": "sample time",
    "cpu_user_pct": "gauge, % of all CPUs",
    "cpu_system_pct": "gauge, % of all CPUs",
    "cpu_iowait_pct": "gauge, % of all CPUs",
    "mem_available_bytes": "gauge",
    "mem_cached_bytes": "gauge",
    "swap_used_bytes": "gauge",
    "pgmajfault_per_s": "rate, /proc/vmstat",
    "pswpin_per_s": "rate, /proc/vmstat",
    "pswpout_per_s": "rate, /proc/vmstat",
    "disk_<dev>_r_s": "rate, reads completed/s (iostat r/s)",
    "disk_<dev>_w_s": "rate, writes completed/s",
    "disk_<dev>_rkb_s": "rate, kB read/s",
    "disk_<dev>_wkb_s": "rate, kB written/s",
    "disk_<dev>_r_await_ms": "mean read latency over the interval",
    "disk_<dev>_w_await_ms": "mean write latency over the interval",
    "disk_<dev>_aqu_sz": "average queue size",
    "disk_<dev>_util_pct": "% of time the device was busy",
    "gpu<i>_util_pct": "gauge (NVML)",
    "gpu<i>_mem_used_bytes": "gauge (NVML; absent on GB10)",
    "gpu<i>_power_w": "gauge (NVML)",
    "gpu<i>_sm_clock_mhz": "gauge (NVML)",
    "gpu<i>_temp_c": "gauge (NVML)",
    "kv_g1_usage": "gauge 0..1, GPU KV usage (vllm:kv_cache_usage_perc)",
    "kv_g1_active_blocks": "gauge, GPU KV blocks in use (Dynamo kvstats, TensorRT-LLM)",
    "kv_g1_total_blocks": "gauge, GPU KV blocks configured",
    "kv_g1_prefix_hit_rate": "gauge 0..1, GPU prefix-cache hit rate (Dynamo, TensorRT-LLM)",
    "kv_block_tokens": "gauge, tokens per KV block as the server reports it",
    "kv_running": "gauge, running sequences",
    "kv_waiting": "gauge, waiting sequences",
    "kv_prefix_queries_tokens": "counter",
    "kv_prefix_hits_tokens": "counter",
    "kv_preemptions": "counter",
    "kv_offload_blocks_g1_g2": "counter (kvbm_offload_blocks_d2h)",
    "kv_offload_blocks_g2_g3": "counter (kvbm_offload_blocks_h2d)",
    "kv_offload_blocks_g1_g3": "counter (kvbm_offload_blocks_d2d)",
    "kv_onboard_blocks_g2": "counter (kvbm_onboard_blocks_h2d)",
    "kv_onboard_blocks_g3": "counter (kvbm_onboard_blocks_d2d)",
    "kv_matched_tokens": "counter (kvbm_matched_tokens)",
    "kv_offload_bytes_g1_g2": "counter, bytes GPU -> host (vllm:kv_offload_store_bytes)",
    "kv_onboard_bytes_g2_g1": "counter, bytes host -> GPU (vllm:kv_offload_load_bytes)",
    "kv_offload_bytes_g2_g3": "counter, bytes host -> files (vllm:kv_offload_tiering_write_bytes)",
    "kv_onboard_bytes_g3_g2": "counter, bytes files -> host (vllm:kv_offload_tiering_read_bytes)",
    "kv_g2_hit_rate": "gauge 0..1",
    "kv_g3_hit_rate": "gauge 0..1",
    "kv_g3_fetch_seconds_sum": "counter (simulator only)",
    "kv_g3_fetch_seconds_count": "counter (simulator only)",
    "kv_g2_fetch_seconds_sum": "counter (simulator only, modeled G2 onboard time)",
    "kv_g2_fetch_seconds_count": "counter (simulator only)",
    "kv_g3_read_bytes": "counter (simulator only, bytes read from G3 files)",
    "kv_g3_write_bytes": "counter (simulator only, bytes written to G3 files)",
    "kv_g2_usage_perc": "gauge 0..1 (simulator only)",
    "kv_g3_usage_perc": "gauge 0..1 (simulator only)",
    "kv_<x>": "from the simulator's other sim_kv_<x> (histograms give _sum/_count)",
    "sim_lora_loads": "counter, LoRA adapter loads from disk (simulator)",
    "sim_lora_read_bytes": "counter, bytes read loading LoRA adapters (simulator)",
    "sim_requests_rejected": "counter, requests rejected by admission control (simulator)",
    "sim_paging_faults": "counter, KV blocks paged in from swap (simulator mode paging)",
    "sim_paging_pages_in": "counter, 4 KiB pages read from the swap file (mode paging)",
    "sim_paging_pages_out": "counter, 4 KiB pages written to the swap file (mode paging)",
    "sim_<x>": "the simulator's other own series, name kept (engine steps, ...)",
    "kv_lmcache_hit_tokens": "counter (lmcache:num_hit_tokens)",
    "kv_lmcache_requested_tokens": "counter (lmcache:num_requested_tokens)",
    "kv_lmcache_hit_rate": "gauge 0..1 (lmcache:retrieve_hit_rate)",
    "kv_lmcache_retrieve_seconds_sum": "counter (lmcache:time_to_retrieve histogram)",
    "kv_lmcache_retrieve_seconds_count": "counter",
    "kv_lmcache_storage_bytes": "gauge (lmcache:local_storage_usage)",
    "server_ttft_seconds_sum": "counter, engine TTFT (vllm:time_to_first_token_seconds)",
    "server_ttft_seconds_count": "counter",
    "server_inflight": "gauge, requests in the worker (dynamo_component_inflight_requests)",
    "server_iterations": "counter, engine iterations (TensorRT-LLM iter + 1)",
    "server_iter_stats_lost": "counter, TensorRT-LLM iteration stats never received (gaps in iter)",
    "server_iter_latency_ms": "mean iteration latency of the iterations since the last sample",
    "server_gpu_mem_bytes": "gauge, engine-reported GPU memory (TensorRT-LLM gpuMemUsage)",
    "frontend_inflight": "gauge (dynamo_frontend_inflight_requests)",
    "frontend_queued": "gauge (dynamo_frontend_queued_requests)",
    "frontend_ttft_seconds_sum": "counter (dynamo_frontend_time_to_first_token_seconds)",
    "frontend_ttft_seconds_count": "counter",
    "frontend_itl_seconds_sum": "counter (dynamo_frontend_inter_token_latency_seconds)",
    "frontend_itl_seconds_count": "counter",
    "frontend_cached_tokens_sum": "counter, cached prompt tokens (dynamo_frontend_cached_tokens)",
    "frontend_cached_tokens_count": "counter",
    "frontend_input_tokens_sum": "counter, prompt tokens (dynamo_frontend_input_sequence_tokens)",
    "frontend_input_tokens_count": "counter",
    "server_read_bytes": "counter, /proc/<pid>/io read_bytes summed over server processes",
    "sim_engine_step_modeled_seconds": "counter, s: embedded simulator only, modeled step time",
    "sim_engine_step_actual_seconds": "counter, s: embedded simulator only, measured step time",
    "server_write_bytes": "counter, /proc/<pid>/io write_bytes summed",
    "cgroup_read_bytes": "counter, cgroup v2 io.stat rbytes of the server's cgroup(s)",
    "cgroup_write_bytes": "counter, io.stat wbytes",
    "cgroup_read_ios": "counter, io.stat rios",
    "cgroup_write_ios": "counter, io.stat wios",
}

#: Top-level keys of ``run.json``.
RUN_KEYS = (
    "schema_version",
    "hypothesis",
    "stack",
    "point",
    "rep",
    "spec",  # the resolved point specification (what the loadgen job's params hold)
    "endpoint",  # the endpoint file's content
    "versions",  # software versions (python, package, snakemake, aiohttp, ...)
    "host",  # host facts (hostname, cpus, memory, kernel)
    "clock",  # this process's clock anchor
    "phases",  # {phase: [start_ns, end_ns]}
    "server_startup_s",  # server start to ready
    "telemetry",  # cadence asked/achieved, sidecar clock, unavailable sources
    "counts",  # requests per phase, errors
    "outcome",  # ok | marked | failed
    "reasons",  # reason codes for a marked or failed outcome
)

SCHEMA_VERSION = 1

#: ``load.users: u_work`` means: take the stack's usable concurrency from H0 at run time.
U_WORK_SENTINEL = "u_work"


@dataclass
class MetricsSource:
    """One metrics endpoint a server exposes."""

    url: str
    format: str = "prometheus"  # prometheus | trtllm-json
    source: str = "server"  # sim | vllm | dynamo_frontend | dynamo_worker | kvbm | trtllm


@dataclass
class Endpoint:
    """What ``server_up`` publishes about the server it brought up."""

    stack: str
    kind: str  # sim | command | external
    base_url: str
    model: str
    pid: int  # the serve process (the service job's process)
    pids: list[int] = field(default_factory=list)  # server processes whose I/O to count
    log: str | None = None
    metrics: list[MetricsSource] = field(default_factory=list)
    health_url: str | None = None
    startup_timeout_s: float = 60.0
    started_ns: int = 0
    g3_dir: str | None = None  # where KV blocks go to disk (device to watch), if any
    block_bytes: int | None = None  # bytes of one KV block at full scale, if known
    block_tokens: int | None = None  # tokens of one KV block, if known
    kv_tiers: list[str] | None = None  # the KV tiers the stack declares it has, if it does
    max_num_tokens: int | None = None  # engine limit for the preflight check
    prime: dict[str, Any] | None = None  # requests to send once ready (serving/prime.py)
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, path: str | os.PathLike[str]) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Endpoint:
        data = json.loads(Path(path).read_text())
        data["metrics"] = [MetricsSource(**m) for m in data.get("metrics", [])]
        return cls(**data)


@dataclass
class SidecarInfo:
    """What ``telemetry_sidecar`` publishes: where it spools and how to ask it to flush.

    Flush protocol: the consumer sends ``SIGUSR1`` to ``pid``; the sidecar takes one more
    sample at once, then appends ``{"kind": "flush", "t_ns": ...}`` to the spool and
    fsyncs. The consumer waits for a flush line with ``t_ns`` at or after its request,
    then copies the samples of its window into its own ``telemetry.jsonl``.
    """

    pid: int
    spool: str
    cadence_ms: float
    started_ns: int
    clock: dict[str, int] = field(default_factory=dict)

    def write(self, path: str | os.PathLike[str]) -> None:
        write_json(path, asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SidecarInfo:
        return cls(**json.loads(Path(path).read_text()))


def wait_for_file(path: str | os.PathLike[str], timeout_s: float, poll_s: float = 0.05) -> Path:
    """Wait until a service file exists and parses as JSON; raise TimeoutError otherwise.

    Services are started by Snakemake at the same moment as their consumer, so consumers
    poll for the file (never Snakemake's ``--latency-wait``).
    """
    p = Path(path)
    deadline = time.monotonic() + timeout_s
    while True:
        if p.exists():
            try:
                json.loads(p.read_text())
                return p
            except (json.JSONDecodeError, OSError):
                pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{p} did not appear within {timeout_s:.0f} s")
        time.sleep(poll_s)
