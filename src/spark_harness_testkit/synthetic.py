"""Synthetic raw runs in the exact data-contract format, with planted effects.

Why: every statistic and every verdict must be checked on data whose answer is known
(a knee planted at one concurrency, a storage knee at one context, a slope of a given
size, flat iowait, a failed point), and the ingest benchmark needs millions of
contract-shaped rows quickly. A :class:`RunSpec` says what one point and repetition
looks like; :func:`write_run` writes its ``requests.jsonl``, ``telemetry.jsonl`` and
``run.json`` under the results layout (``raw/...`` or, for a failed attempt,
``failed/.../attempt-*``), exactly as ``spark-harness loadgen`` does.

:class:`World` maps any point of the real plan (``plan.Run``) to a ``RunSpec`` with a
small, fully known model of the two stacks, so a whole ``H_all`` can be synthesised.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any, cast

import numpy as np
import polars as pl

from spark_harness import contract, layout
from spark_harness.files import write_json
from spark_harness.ingest import COUNTERS, request_schema
from spark_harness.telemetry.probe import SIZES as PROBE_SIZES

#: The block device every synthetic run "watches" (holds the G3 directory).
DEVICE = "nvme0n1"
#: A fixed time origin (2026-01-01 UTC), so equal specs give byte-equal files.
T0_NS = 1_767_225_600_000_000_000
#: Standard normal quantile of 0.99: a lognormal with sigma s has p99/p50 = exp(Z99 * s).
Z99 = 2.3263478740408408
KV_PREFIX = "kv_"


@dataclass
class Levels:
    """Telemetry levels during one part of a run (the analysed window or the rest)."""

    iowait_pct: float = 0.5
    read_iops: float = 2.0
    read_kbps: float = 8.0
    read_await_ms: float = 0.1
    mem_available_bytes: float = 20e9
    kv_g1_usage: float = 0.2
    kv_waiting: float = 0.0
    pgmajfault_per_s: float = 0.0


@dataclass
class RunSpec:
    """One synthetic point and repetition; every number here is a planted truth."""

    hyp: str
    stack: str
    point: str
    rep: int
    axes: dict[str, Any] = field(default_factory=dict)
    #: Sections of the resolved point spec (workload, load, qos, server, ...).
    spec: dict[str, Any] = field(default_factory=dict)
    #: ``load`` or, for the re-hydration scenario (H9), ``replay``.
    window_phase: str = "load"
    idle_s: float = 1.0
    warmup_s: float = 0.4
    window_s: float = 4.0
    cooldown_s: float = 0.2
    cadence_ms: float = 200.0
    # --- requests of the analysed window
    n_requests: int = 400
    n_before: int = 10  # requests of the phase(s) before the window, never analysed
    ttft_p50_ms: float = 50.0
    ttft_p99_ms: float = 70.0
    tpot_ms: float = 10.0
    error_share: float = 0.0
    prompt_tokens: int = 256
    output_tokens: int = 16
    cached_share: float = 0.0  # share of prompt tokens reported as cached
    sessions: int | None = None  # requests belong to this many sessions (turns counted up)
    #: kv_g3_fetch_ms = share * ttft per request; None: the server reports no fetch time.
    g3_fetch_share: float | None = None
    # --- telemetry
    idle: Levels = field(default_factory=Levels)
    window: Levels = field(default_factory=Levels)
    noise: float = 0.02  # relative noise on every gauge and rate
    #: Increase of each canonical counter over the analysed window (flat elsewhere).
    counters: dict[str, float] = field(default_factory=dict)
    kv_telemetry: bool = True  # False: no kv_* fields, one "unavailable" record instead
    #: False: no block device is watched (G3 in memory): no disk_* fields
    device_counters: bool = True
    g3_dir: bool = False  # the server reports a G3 directory (it has a disk tier)
    kv_tiers: tuple[str, ...] | None = None  # the tiers its stack declares (None: none)
    #: The device's unloaded read time (ms) at every probed request size, as the load
    #: generator's probe reports it before the idle phase; None: no probe ran
    unloaded_read_ms: float | None = 0.1
    #: Canonical counters the stack exports (None: every one); the others are never written.
    exported: frozenset[str] | None = None
    #: MiB/s the QoS perturbation (fio) reports reading itself; None: no perturbation ran.
    perturbation_read_mib_s: float | None = None
    #: Part of the window (fractions) without any telemetry sample: breaks alignment.
    telemetry_gap: tuple[float, float] | None = None
    block_bytes: int | None = 65536
    block_tokens: int = 16
    #: G1's size, as TensorRT-LLM's maxNumBlocks reports it (None: not exported, as vLLM)
    g1_total_blocks: float | None = 32768.0
    outcome: str = "ok"  # ok | marked | failed
    reasons: list[str] = field(default_factory=list)
    attempt: str = "attempt-1"  # folder name of a failed attempt
    seed: int = 0

    @property
    def sigma(self) -> float:
        return math.log(self.ttft_p99_ms / self.ttft_p50_ms) / Z99


def _phases(rs: RunSpec) -> dict[str, list[int | None]]:
    before = ("warmup",) if rs.window_phase == "load" else ("populate", "thrash")
    after = ("cooldown",) if rs.window_phase == "load" else ()
    spans: list[tuple[str, float]] = [("idle", rs.idle_s)]
    spans += [(p, rs.warmup_s / len(before)) for p in before]
    spans += [(rs.window_phase, rs.window_s)] + [(p, rs.cooldown_s) for p in after]
    out: dict[str, list[int | None]] = {}
    t = T0_NS + rs.rep * 10**12  # repetitions never overlap in time
    for name, dur in spans:
        out[name] = [t, t + round(dur * 1e9)]
        t += round(dur * 1e9)
    if rs.outcome == "failed":  # the server died 30 % into the window: no end, no after
        start = out[rs.window_phase][0]
        assert start is not None
        out[rs.window_phase] = [start, None]
        for p in after:
            del out[p]
    return out


_INV_CDF = np.frompyfunc(NormalDist().inv_cdf, 1, 1)


def _stratified_normal(n: int, rng: np.random.Generator) -> np.ndarray:
    """n standard normal draws, one per equal-probability stratum, in random order.

    Planted percentiles then hold to within sampling error of the strata, not of n
    independent draws, so repetitions differ little and the planted effect dominates.
    """
    u = (rng.permutation(n) + rng.random(n)) / n
    return cast(np.ndarray, _INV_CDF(u)).astype(float)  # an array in, an array out


def _requests(
    rs: RunSpec, phases: dict[str, list[int | None]], rng: np.random.Generator
) -> pl.DataFrame:
    ws, we = phases[rs.window_phase]
    assert ws is not None
    end = we if we is not None else ws + round(0.3 * rs.window_s * 1e9)
    n = rs.n_requests if we is not None else max(1, int(0.3 * rs.n_requests))
    before = [p for p in phases if p not in ("idle", rs.window_phase, "cooldown")]
    b0, b1 = phases[before[0]][0], phases[before[-1]][1]
    assert b0 is not None and b1 is not None
    sent = np.concatenate(
        [np.sort(rng.integers(b0, b1, rs.n_before)), np.sort(rng.integers(ws, end, n))]
    )
    phase = [before[0]] * rs.n_before + [rs.window_phase] * n
    total = len(sent)
    # durations come from integer nanoseconds, as the load generator measures them
    ttft = np.round(rs.ttft_p50_ms * np.exp(rs.sigma * _stratified_normal(total, rng)), 6)
    ok = rng.random(total) >= rs.error_share
    out_tok = rs.output_tokens
    offsets = np.round(ttft[:, None] + rs.tpot_ms * np.arange(out_tok)[None, :], 6)
    e2e = offsets[:, -1]
    idx = np.arange(total)
    users = int(rs.spec.get("load", {}).get("users", 4) or 4)
    fetch = None if rs.g3_fetch_share is None else np.round(rs.g3_fetch_share * ttft, 6)
    g3_blocks = rs.counters.get("kv_onboard_blocks_g3", 0.0)
    per_req_blocks = round(g3_blocks / max(n, 1)) if rs.g3_fetch_share is not None else None
    cached = round(rs.cached_share * rs.prompt_tokens)
    df = pl.DataFrame(
        {
            "request_id": [f"{rs.point}-r{rs.rep}-{i}" for i in idx],
            "user_id": (idx % users).astype(np.int64),
            "session_id": [f"s{i % rs.sessions}" for i in idx] if rs.sessions else None,
            "turn": (idx // rs.sessions).astype(np.int64) if rs.sessions else None,
            "adapter": None,
            "phase": phase,
            "scheduled_ns": None,
            "ready_ns": sent,
            "sent_ns": sent,
            "sent_bound_ms": np.zeros(total),
            "first_token_ns": sent + np.round(ttft * 1e6).astype(np.int64),
            "first_token_bound_ms": np.zeros(total),
            "done_ns": sent + np.round(e2e * 1e6).astype(np.int64),
            "ttft_ms": ttft,
            "tpot_ms": np.full(total, rs.tpot_ms),
            "e2e_ms": e2e,
            "queue_ms": np.zeros(total),
            "e2e_incl_queue_ms": e2e,
            "schedule_lag_ms": None,
            "event_offsets_ms": pl.Series(offsets).cast(pl.List(pl.Float64)),
            "event_tokens": pl.Series(np.ones((total, out_tok), dtype=np.int64)).cast(
                pl.List(pl.Int64)
            ),
            "prompt_tokens": np.full(total, rs.prompt_tokens, dtype=np.int64),
            "completion_tokens": np.full(total, out_tok, dtype=np.int64),
            "prompt_tokens_client": np.full(total, rs.prompt_tokens, dtype=np.int64),
            "completion_tokens_client": np.full(total, out_tok, dtype=np.int64),
            "cached_tokens": np.full(total, cached, dtype=np.int64),
            "kv_g3_fetch_ms": fetch,
            "kv_g3_onboard_blocks": None if per_req_blocks is None else [per_req_blocks] * total,
            "status": np.where(ok, 200, 500).astype(np.int64),
            "ok": ok,
            "error_kind": None,
            "error": None,
        },
        schema=request_schema(),
        strict=False,
    )
    failed_cols = ["first_token_ns", "ttft_ms", "tpot_ms", "event_offsets_ms", "event_tokens"]
    df = df.with_columns(
        *[pl.when(pl.col("ok")).then(pl.col(c)).alias(c) for c in failed_cols],
        pl.when(~pl.col("ok")).then(pl.lit("http")).alias("error_kind"),
        pl.when(~pl.col("ok")).then(pl.lit("HTTP 500 (synthetic)")).alias("error"),
    )
    return df


def _telemetry(
    rs: RunSpec, phases: dict[str, list[int | None]], rng: np.random.Generator
) -> pl.DataFrame:
    ws, we = phases[rs.window_phase]
    assert ws is not None
    start = phases["idle"][0]
    assert start is not None
    last = max(e for _, e in phases.values() if e is not None)
    if we is None:
        we = ws + round(0.3 * rs.window_s * 1e9)
        last = we
    step = round(rs.cadence_ms * 1e6)
    t = np.arange(start, last + 1, step, dtype=np.int64)
    t = t + rng.integers(0, step // 50 + 1, len(t))  # a sampler never ticks exactly
    if rs.telemetry_gap is not None:
        g0 = ws + rs.telemetry_gap[0] * (we - ws)
        g1 = ws + rs.telemetry_gap[1] * (we - ws)
        t = t[(t < g0) | (t > g1)]
    inside = (t >= ws) & (t < we)
    frac = np.clip((t - ws) / (we - ws), 0.0, 1.0)

    def level(attr: str) -> np.ndarray:
        v = np.where(inside, getattr(rs.window, attr), getattr(rs.idle, attr))
        return np.maximum(v * (1 + rs.noise * rng.standard_normal(len(t))), 0.0)

    cols: dict[str, Any] = {
        "kind": "sample",
        "t_ns": t,
        "cpu_user_pct": np.full(len(t), 20.0),
        "cpu_system_pct": np.full(len(t), 5.0),
        "cpu_iowait_pct": level("iowait_pct"),
        "mem_available_bytes": level("mem_available_bytes"),
        "mem_cached_bytes": np.full(len(t), 4e9),
        "swap_used_bytes": np.zeros(len(t)),
        "pgmajfault_per_s": level("pgmajfault_per_s"),
    }
    if rs.device_counters:
        cols |= {
            f"disk_{DEVICE}_r_s": level("read_iops"),
            f"disk_{DEVICE}_w_s": np.full(len(t), 1.0),
            f"disk_{DEVICE}_rkb_s": level("read_kbps"),
            f"disk_{DEVICE}_wkb_s": np.full(len(t), 4.0),
            f"disk_{DEVICE}_r_await_ms": level("read_await_ms"),
            f"disk_{DEVICE}_w_await_ms": np.full(len(t), 0.5),
            f"disk_{DEVICE}_aqu_sz": level("read_await_ms") * level("read_iops") / 1000,
            f"disk_{DEVICE}_util_pct": np.minimum(level("read_iops") / 10, 100.0),
        }
    if rs.kv_telemetry:
        cols["kv_g1_usage"] = np.minimum(level("kv_g1_usage"), 1.0)
        if rs.g1_total_blocks is not None:
            cols["kv_g1_total_blocks"] = np.full(len(t), rs.g1_total_blocks)
        cols["kv_running"] = np.full(len(t), 4.0)
        cols["kv_waiting"] = level("kv_waiting")
    for name in COUNTERS:
        if name.startswith(KV_PREFIX) and not rs.kv_telemetry:
            continue
        if rs.exported is not None and name not in rs.exported:
            continue
        base = 1000.0 if name.startswith(KV_PREFIX) else 1e6
        cols[name] = np.round(base + rs.counters.get(name, 0.0) * frac)
    return pl.DataFrame(cols)


def _unavailable(rs: RunSpec, t_ns: int) -> list[dict[str, Any]]:
    rows = [{"kind": "unavailable", "t_ns": t_ns, "source": "gpu", "reason": "synthetic: no NVML"}]
    if not rs.kv_telemetry:
        rows.append(
            {
                "kind": "unavailable",
                "t_ns": t_ns,
                "source": "server_metrics",
                "reason": "synthetic: the server exposes no KV metrics",
            }
        )
    return rows


def _qos(rs: RunSpec) -> dict[str, Any]:
    """run.json's ``qos`` entry as measure.py leaves it: fio's own report when one ran."""
    if rs.perturbation_read_mib_s is None:
        return {}
    summary = {"runtime_s": rs.window_s, "read_mib_s": rs.perturbation_read_mib_s}
    return {"qos": {"stopped": {"tool": "fio", "summary": summary}}}


def _read_probe(rs: RunSpec) -> dict[str, Any]:
    """run.json's ``read_probe`` as measure.py leaves it (telemetry.probe.record)."""
    if rs.unloaded_read_ms is None or not rs.device_counters:
        return {}
    curve = {str(size): rs.unloaded_read_ms for size in PROBE_SIZES}
    probe = {"directory": "/scratch", "device": DEVICE, "unloaded_read_ms": curve}
    return {"read_probe": probe}


def run_dir(results: Path, rs: RunSpec) -> Path:
    """Where ``spark-harness loadgen`` would leave this run (failed attempts apart)."""
    ids = {"hyp": rs.hyp, "stack": rs.stack, "point": rs.point, "rep": rs.rep}
    if rs.outcome == "failed":
        return layout.path(results, layout.FAILED_DIR, **ids) / rs.attempt
    return layout.path(results, layout.RAW_DIR, **ids)


def run_json(rs: RunSpec, phases: dict[str, list[int | None]], counts: dict[str, Any]) -> dict:
    """``run.json`` of a synthetic run, with every key of ``contract.RUN_KEYS``."""
    sim = {"mode": "tiered" if rs.stack.startswith("B") else "uma", "block_tokens": rs.block_tokens}
    server = {"name": f"sim-{sim['mode']}", "kind": "sim", "model": "sim-llama", "sim": sim}
    spec: dict[str, Any] = {
        "hypothesis": rs.hyp,
        "stack": rs.stack,
        "point": rs.point,
        "rep": rs.rep,
        "seed": rs.seed,
        "axes": dict(rs.axes),
        "phases": {"idle_s": rs.idle_s, "load_s": rs.window_s},
        "telemetry": {"cadence_ms": rs.cadence_ms, "devices": "auto"},
        "workload": {"kind": "fixed_context", "context_tokens": rs.prompt_tokens},
        "load": {"kind": "closed", "users": 4},
        "qos": {"profile": "none"},
        "server": server,
    }
    for section, value in rs.spec.items():
        if isinstance(value, dict) and isinstance(spec.get(section), dict):
            spec[section] = {**spec[section], **value}
        else:
            spec[section] = value
    endpoint = {
        "stack": rs.stack,
        "kind": "sim",
        "base_url": "http://127.0.0.1:0",
        "model": "sim-llama",
        "pid": 0,
        "g3_dir": "/scratch/g3" if rs.g3_dir else None,
        "block_bytes": rs.block_bytes,
        "block_tokens": rs.block_tokens,
        "kv_tiers": None if rs.kv_tiers is None else list(rs.kv_tiers),
    }
    return {
        "schema_version": contract.SCHEMA_VERSION,
        "hypothesis": rs.hyp,
        "stack": rs.stack,
        "point": rs.point,
        "rep": rs.rep,
        "spec": spec,
        "endpoint": endpoint,
        "versions": {"spark_harness": "synthetic"},
        "host": {"hostname": "synthetic", "cpus": 2},
        "clock": {"wall_ns": T0_NS, "mono_ns": 0},
        "phases": phases,
        "server_startup_s": 0.5,
        "telemetry": {
            "cadence_ms": rs.cadence_ms,
            "achieved_cadence_ms": rs.cadence_ms,
            "devices": [DEVICE] if rs.device_counters else [],
            "unavailable": ["gpu"] + ([] if rs.kv_telemetry else ["server_metrics"]),
        },
        "counts": counts,
        **_qos(rs),
        **_read_probe(rs),
        "outcome": rs.outcome,
        "reasons": list(rs.reasons),
    }


def write_run(results: Path, rs: RunSpec) -> Path:
    """Write one run's three contract files; return its directory."""
    ident = zlib.crc32(f"{rs.hyp}/{rs.stack}/{rs.point}".encode())
    rng = np.random.default_rng([rs.seed, rs.rep, ident])
    phases = _phases(rs)
    out = run_dir(results, rs)
    out.mkdir(parents=True, exist_ok=True)
    req = _requests(rs, phases, rng)
    req.write_ndjson(out / "requests.jsonl")
    tel = _telemetry(rs, phases, rng)
    tel.write_ndjson(out / "telemetry.jsonl")
    extra = _unavailable(rs, int(tel["t_ns"][0]) if len(tel) else T0_NS)
    with open(out / "telemetry.jsonl", "a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in extra)
    per_phase = req.group_by("phase", maintain_order=True).agg(
        requests=pl.len(), errors=(~pl.col("ok")).sum()
    )
    counts = {
        r["phase"]: {"requests": r["requests"], "errors": r["errors"]}
        for r in per_phase.iter_rows(named=True)
    }
    write_json(out / "run.json", run_json(rs, phases, counts))
    return out


RunId = tuple[str, str, str, int]  # (hypothesis, stack, point, rep)

#: H6's capacity axes and the size that is the stack file's own (the p50 baseline).
CAPACITY_BASE = {"server.sim.g2_blocks": 256, "server.params.cpu_cache_gb": 16}
#: What KVBM and the Dynamo frontend export on the Spark (docs/REFERENCE.md): block counters
#: of every tier move, matched tokens, the frontend's histograms; no fetch latency and
#: no tier byte counters.
KVBM_COUNTERS = frozenset(
    {
        "kv_offload_blocks_g1_g2",
        "kv_offload_blocks_g2_g3",
        "kv_offload_blocks_g1_g3",
        "kv_onboard_blocks_g2",
        "kv_onboard_blocks_g3",
        "kv_matched_tokens",
        "frontend_ttft_seconds_sum",
        "frontend_ttft_seconds_count",
        "frontend_cached_tokens_sum",
        "frontend_cached_tokens_count",
    }
)
#: vLLM's offload traffic in bytes (its tiered stack only): neither the simulator nor
#: KVBM exports it.
VLLM_OFFLOAD_BYTES = frozenset(
    {
        "kv_offload_bytes_g1_g2",
        "kv_onboard_bytes_g2_g1",
        "kv_offload_bytes_g2_g3",
        "kv_onboard_bytes_g3_g2",
    }
)
#: What the telemetry sidecar measures itself on any host (per-process and cgroup I/O).
SIDECAR_COUNTERS = frozenset(
    {
        "server_read_bytes",
        "server_write_bytes",
        "cgroup_read_bytes",
        "cgroup_write_bytes",
        "cgroup_read_ios",
        "cgroup_write_ios",
    }
)
#: the blocks per request at which a saturated G3 path completes ``n_requests`` a window
SATURATED_BLOCKS_PER_REQUEST = 16.0
#: G1's size in tokens: kv_g1_usage is the share of it the users' contexts hold
G1_TOKENS = 16384


@dataclass
class World:
    """A toy model of both stacks whose every effect is planted, for whole-plan data.

    It maps a point of the real plan (its resolved spec) to a :class:`RunSpec`: TTFT
    grows with context (compute), its tail with concurrency from ``knee_users`` on
    (queueing); on the tiered stack, contexts from ``engage_ctx`` fetch KV from G3 and
    from ``storage_knee_ctx`` the fetch is ``knee_share`` of TTFT; degraded QoS adds read
    await, which slows G3 fetches by ``qos_slope`` ms of TTFT per ms of await; iowait
    follows G3 traffic on B and on A moves with the QoS profile only (fio's own I/O),
    never with A's p99. The defaults make every hypothesis of the demo plan hold; change
    one field to plant its absence or a fault.

    ``spark=True`` writes only what the Spark's stacks really export (docs/REFERENCE.md,
    ``telemetry.mapping``): KVBM's block counters on B, no G3 fetch latency, no tier
    byte counters, no simulator counters, no tier counters at all on A (TensorRT-LLM
    has no tier below G1); the stacks' tiers come from their ``params`` there.
    """

    u_work: int = 4
    knee_users: int = 8
    #: H0: completed requests/s grow by 19 % per doubling of users up to this many, then
    #: stay flat (saturation: a sweep past it without a knee refutes the knee); None:
    #: flat from the first step
    saturation_users: int | None = None
    base_ms: float = 20.0
    per_token_ms: float = 0.02
    tail_low: float = 1.4  # p99/p50 below the knee
    tail_high: float = 3.0  # p99/p50 from the knee on
    b_overhead: float = 0.01  # Dynamo's share of p50 (H0: within 5 %)
    engage_ctx: int = 512
    storage_knee_ctx: int = 1024
    engaged_share: float = 0.15
    knee_share: float = 0.6
    qos_await_ms: dict[str, float] = field(
        default_factory=lambda: {"none": 0.0, "moderate": 1.0, "heavy": 4.0}
    )
    qos_slope: float = 8.0  # ms of TTFT per ms of read await while G3 is engaged (H4B)
    #: the device's unloaded read time (the probe's); read await is this plus queueing
    unloaded_read_ms: float = 0.1
    read_probe: bool = True  # False: no unloaded read time recorded (no probe ran)
    #: ms of read await per unit of G3 fetch share: G3's reads queueing at the device
    #: (H2B's await rise); 0: G3's reads never queue (one in flight on an idle device)
    g3_queueing_ms: float = 0.5
    #: SD (ms) of a per-repetition offset on read await: the device between repetitions
    await_rep_noise_ms: float = 0.0
    iowait_per_share: float = 6.0  # iowait pp per unit of G3 fetch share (B); 0: flat
    cold_tail: float = 1.6  # H1: p99/p50 multiplier of cold adapters
    cold_read_bytes: float = 50e6  # H1: the server's extra reads in a cold window
    cold_system_read_bytes: float = 0.0  # H1: other processes' reads after the cache drop
    capacity_exponent: float = 0.4  # H6: p50 x (256 / g2_blocks) ** exponent
    policy_factor: dict[str, float] = field(default_factory=dict)  # H6: p50 x factor
    sessions_knee: int = 16  # H5: the G3 share grows with sessions / (4 x this)
    kv_bytes_per_token: float = 131072.0  # the KV cache's bytes per token (G1's size too)
    #: share of A's KV bytes the OS's available memory loses: 1 on unified memory, 0
    #: where the pool never touches memory while it fills (H3's A half refuted)
    os_sees_a: float = 1.0
    g1_size_exported: bool = True  # False: no G1 size in the telemetry (vLLM)
    device_read_factor: float = 1.0  # device bytes read per byte of G3 onboards (H7)
    g3_counter_scale: float = 1.0  # 0: the server's tier counters never move
    kv_telemetry: bool = True
    h0_prefix_reuse: bool = False  # True: B reuses H0's prompts (no per-request nonce)
    #: MiB/s fio reads itself per QoS profile: device reads, never the server's own.
    qos_read_mib_s: dict[str, float] = field(
        default_factory=lambda: {"none": 0.0, "moderate": 20.0, "heavy": 80.0}
    )
    server_io: bool = True  # False: no per-process read counter (server_read_bytes)
    #: False: B's G3 is on no block device (in memory): no device counters on B's runs
    b_device_counters: bool = True
    #: iowait pp on A per QoS profile (fio's own I/O waits), independent of A's p99
    qos_iowait_a: dict[str, float] = field(
        default_factory=lambda: {"none": 0.0, "moderate": 1.0, "heavy": 3.0}
    )
    iowait_a_per_ms: float = 0.0  # iowait pp on A per ms of p50 (H8A refuted when > 0)
    a_read_kbps: float = 0.0  # A reads this from NVMe in its window (H2A refuted when > 0)
    system_read_kbps: float = 0.0  # other processes' device reads in every window
    a_qos_slope: float = 0.0  # ms of A's TTFT per ms of read await (H4A refuted when large)
    disk_reload_factor: float = 0.25  # H9: disk reload time / recompute time (> 1: slower)
    b1_disk_onboards: bool = False  # B1 (host tier only) shows disk onboards (a fault)
    b1_missing_counters: bool = False  # B1 exports no disk-onboard counter
    #: stacks that export no G3 onboard counter at all (their NVMe traffic is unknown)
    no_g3_onboard_counter: tuple[str, ...] = ()
    declared_tiers: bool = False  # stacks declare their KV tiers (kv_tiers), as vllm-tiered's
    a_tier_onboards: float = 0.0  # A's window shows this many G2 onboards (H1 refuted)
    a_g3_dir: bool = False  # A reports a G3 directory (a stack with tiers, for H1/H2A)
    os_sees_b: float = 0.0  # share of B's KV the OS's available memory loses (H3)
    #: B's G3 counters do not follow its load: the same in every point, varying by
    #: repetition only (H3's B half refuted when the OS sees B's KV)
    b_onboards_untied: bool = False
    #: B's G3 path is saturated: a window completes fewer requests the more blocks each
    #: fetches, so the onboard rate is the same at every context while p99 and the blocks
    #: per request grow (H3's KV predictor must be per request, not per second)
    g3_path_saturated: bool = False
    zero_g3_runs: frozenset[RunId] = frozenset()  # runs whose tier counters never move
    spark: bool = False
    odd_rep_ms: float = 0.0  # added to TTFT on odd repetitions of the disk mode (H9)
    rep_noise: float = 0.0  # relative SD of a per-repetition TTFT factor
    #: other processes' memory in use, the same in a run's idle phase and window (H3's
    #: OS memory is the run's own idle minus its window, which cancels it): an SD in
    #: bytes of a per-run offset, and bytes per context token of a part that follows
    #: the sweep (other memory released while a plan ran its longer contexts first)
    other_mem_jitter_bytes: float = 0.0
    other_mem_per_ctx_token: float = 0.0
    n_requests: int = 300
    telemetry_gap: tuple[float, float] | None = None
    fail: frozenset[RunId] = frozenset()  # written as failed attempts only
    retry: frozenset[RunId] = frozenset()  # a failed attempt, then a completed rerun

    def run_spec(self, spec: dict[str, Any]) -> RunSpec:
        """The synthetic run of one resolved point spec (``plan.Run.spec``)."""
        wl, load = spec.get("workload", {}), spec.get("load", {})
        server = spec.get("server") or {}
        sim = server.get("sim", {})
        tiered, g2, disk = self._tiers(spec["stack"], server)
        users = self.u_work if load.get("users") == "u_work" else int(load.get("users", 4))
        chat = wl.get("kind") == "chat"
        rehydrate = wl.get("kind") == "rehydrate"
        turns = int(wl.get("turns", 4))
        ctx = turns * int(wl.get("turn_tokens", 64)) if chat else int(wl.get("context_tokens", 256))
        profile = (spec.get("qos") or {}).get("profile", "none")
        qos = self.qos_await_ms.get(profile, 0.0)
        if rehydrate:  # replayed sessions: reloaded from disk (B2) or recomputed
            p50, share = self._replay(disk and g2, ctx)
            p50 += self.odd_rep_ms * (spec["rep"] % 2) * (share > 0)
        else:
            share = self._share(disk, ctx, int(wl["sessions"]) if chat else None)
            p50 = (self.base_ms + self.per_token_ms * ctx) * (1 + self.b_overhead * tiered)
            cap = next((k for k in CAPACITY_BASE if k in spec.get("axes", {})), None)
            if tiered and cap and spec["axes"][cap]:
                # H6 only: the stack file's own G2 size is the baseline elsewhere
                p50 *= (CAPACITY_BASE[cap] / spec["axes"][cap]) ** self.capacity_exponent
            p50 *= self.policy_factor.get(sim.get("eviction", "lru"), 1.0) if tiered else 1.0
            slope = self.qos_slope if share > 0 else 0.0 if tiered else self.a_qos_slope
            p50 = p50 / (1 - share) + slope * (qos - self.qos_await_ms["none"])
        noise, noise2, noise3 = np.random.default_rng(
            [int(spec.get("seed", 0)), 7]
        ).standard_normal(3)
        p50 *= 1 + self.rep_noise * noise
        tail = self.tail_high if users >= self.knee_users else self.tail_low
        tail *= self.cold_tail if wl.get("adapter_cache") == "cold" else 1.0
        per_request = (1.0 if rehydrate and share else share) * ctx / 16
        n = self.n_requests
        if tiered and self.g3_path_saturated and per_request > 0:
            n = max(20, round(self.n_requests * SATURATED_BLOCKS_PER_REQUEST / per_request))
        g3 = n * per_request
        tiers = g3 * self.g3_counter_scale
        if tiered and self.b_onboards_untied:
            tiers = 1000.0 * (1 + 0.2 * (spec["rep"] % 3))
        if (spec["hypothesis"], spec["stack"], spec["point"], spec["rep"]) in self.zero_g3_runs:
            tiers = 0.0
        kv_in_memory = users * ctx * self.kv_bytes_per_token
        other_mem = self.other_mem_per_ctx_token * ctx + self.other_mem_jitter_bytes * noise2
        window_s = 4.0
        if spec["hypothesis"] == "H0" and self.saturation_users:
            # the same requests in a longer window below saturation: 2 ** 0.25 = +19 %
            # requests/s per doubling (windows stay short: 13.5 s at 1 of 128 users)
            window_s *= (self.saturation_users / min(users, self.saturation_users)) ** 0.25
        fio = self.qos_read_mib_s.get(profile, 0.0)
        b1_fault = self.b1_disk_onboards and spec["stack"] == "B1"
        cold = wl.get("adapter_cache") == "cold"
        iowait_a = self.qos_iowait_a.get(profile, 0.0) + self.iowait_a_per_ms * p50
        return RunSpec(
            hyp=spec["hypothesis"],
            stack=spec["stack"],
            point=spec["point"],
            rep=spec["rep"],
            axes=dict(spec.get("axes", {})),
            # as measure.py does, the resolved spec carries U_work's value, not the sentinel
            spec={
                **{k: spec[k] for k in ("workload", "qos", "server") if k in spec},
                "load": {**load, "users": users},
            },
            window_phase="replay" if rehydrate else "load",
            window_s=window_s,
            n_requests=n,
            ttft_p50_ms=p50,
            ttft_p99_ms=p50 * tail,
            prompt_tokens=ctx // turns if chat else ctx,
            sessions=int(wl["sessions"]) if chat else None,
            cached_share=0.9
            if tiered and (spec["hypothesis"] != "H0" or self.h0_prefix_reuse)
            else 0.0,
            g3_fetch_share=share if tiered and not self.spark else None,
            window=Levels(
                iowait_pct=0.5 + (self.iowait_per_share * share if tiered else iowait_a),
                read_iops=2.0 + g3 * self.device_read_factor / window_s,
                read_kbps=8.0
                + (0.0 if tiered else self.a_read_kbps)
                + self.system_read_kbps
                + g3 * self.device_read_factor * 65536 / window_s / 1024
                + cold * (self.cold_read_bytes + self.cold_system_read_bytes) / window_s / 1024
                + fio * 1024,
                read_await_ms=self.unloaded_read_ms
                + qos
                + self.g3_queueing_ms * share
                + self.await_rep_noise_ms * noise3,
                mem_available_bytes=20e9
                - other_mem
                - kv_in_memory * (self.os_sees_b if tiered else self.os_sees_a),
                kv_g1_usage=min(users * ctx / G1_TOKENS, 1.0),
            ),
            counters={
                "kv_onboard_blocks_g3": tiers + 50.0 * b1_fault,
                "kv_offload_blocks_g2_g3": tiers,
                "kv_offload_blocks_g1_g2": 2 * tiers,
                "kv_onboard_blocks_g2": 0.1 * tiers + (0.0 if tiered else self.a_tier_onboards),
                "server_read_bytes": self.cold_read_bytes * cold
                + g3 * self.device_read_factor * 65536
                + (0.0 if tiered else self.a_read_kbps * 1024 * window_s),
            },
            kv_telemetry=self.kv_telemetry,
            device_counters=self.b_device_counters or not tiered,
            exported=self._exported(spec["stack"], tiered),
            g3_dir=disk or (self.a_g3_dir and not tiered),
            kv_tiers=(
                ("g1", *(["g2"] if g2 else []), *(["g3"] if disk else []))
                if self.declared_tiers
                else None
            ),
            perturbation_read_mib_s=None if profile == "none" else fio,
            telemetry_gap=self.telemetry_gap,
            idle=Levels(mem_available_bytes=20e9 - other_mem),
            block_bytes=65536,
            unloaded_read_ms=self.unloaded_read_ms if self.read_probe else None,
            g1_total_blocks=G1_TOKENS * self.kv_bytes_per_token / 65536
            if self.g1_size_exported
            else None,
            seed=int(spec.get("seed", 0)),
        )

    def _tiers(self, stack: str, server: dict[str, Any]) -> tuple[bool, bool, bool]:
        """(tiered, has G2, has G3): from the simulator's settings, else from KVBM's
        params (a null cache size switches that tier off, as the variants do)."""
        sim = server.get("sim")
        if sim:
            tiered = sim.get("mode") == "tiered"
            return (
                tiered,
                tiered and sim.get("g2_blocks", 1) > 0,
                tiered and sim.get("g3_blocks", 1) > 0,
            )
        params = server.get("params") or {}
        g2, g3 = bool(params.get("cpu_cache_gb")), bool(params.get("disk_cache_gb"))
        return stack.startswith("B") and (g2 or g3), g2, g3

    def _exported(self, stack: str, tiered: bool) -> frozenset[str]:
        """The counters the stack exports: all (the simulator), or the Spark's own."""
        if self.spark:
            out = SIDECAR_COUNTERS | (KVBM_COUNTERS if tiered else frozenset())
        else:
            out = frozenset(COUNTERS) - VLLM_OFFLOAD_BYTES
        if not self.server_io:
            out -= {"server_read_bytes"}
        if (self.b1_missing_counters and stack == "B1") or stack in self.no_g3_onboard_counter:
            out -= {"kv_onboard_blocks_g3"}
        return out

    def _share(self, disk: bool, ctx: int, sessions: int | None) -> float:
        """Share of TTFT spent fetching KV from G3 (0 where G3 is not engaged)."""
        if not disk:
            return 0.0
        if sessions is not None:
            return self.knee_share * min(sessions / (4 * self.sessions_knee), 1.0)
        if ctx >= self.storage_knee_ctx:
            return self.knee_share
        return self.engaged_share if ctx >= self.engage_ctx else 0.0

    def _replay(self, disk: bool, ctx: int) -> tuple[float, float]:
        """H9: (p50, G3 fetch share): B0/B1 recompute the replayed context; B2 reloads
        it from disk in ``disk_reload_factor`` of the recompute time."""
        compute = 4 * self.per_token_ms * ctx
        if disk:
            fetch = self.disk_reload_factor * compute
            return self.base_ms + fetch, fetch / (self.base_ms + fetch)
        return self.base_ms + compute, 0.0

    def runs(self, spec: dict[str, Any]) -> list[RunSpec]:
        """What one planned run leaves behind: a completed run and/or a failed attempt."""
        rs = self.run_spec(spec)
        ident = (rs.hyp, rs.stack, rs.point, rs.rep)
        failed = replace(rs, outcome="failed", reasons=["server_died"])
        if ident in self.fail:
            return [failed]
        return [failed, rs] if ident in self.retry else [rs]


def write_plan(
    plan: Any, results: Path, world: World | None = None, hyps: Iterable[str] | None = None
) -> dict[tuple[str, str], list[Path]]:
    """Synthesise the runs of a ``plan.Plan`` (of ``hyps``, default all); return the run
    directories per (hypothesis, stack)."""
    world = world or World()
    keep = set(hyps) if hyps is not None else None
    out: dict[tuple[str, str], list[Path]] = {}
    for run in plan.runs():
        if keep is not None and run.hyp not in keep:
            continue
        for rs in world.runs(run.spec):
            out.setdefault((run.hyp, run.stack), []).append(write_run(results, rs))
    return out
