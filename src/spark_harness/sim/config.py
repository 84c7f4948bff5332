"""The simulator's settings: a stack file's ``sim:`` section, checked and completed.

Both stacks run TensorRT-LLM, so by default KV for a whole request (prompt +
``max_tokens``) is reserved at admission (its guaranteed-no-evict scheduler);
``kv_allocation: on_demand`` allocates as tokens are computed and preempts by recompute
when G1 is full, as vLLM does. Prefix reuse defaults to the mode: off for ``uma``
(Stack A's no-reuse control), on for ``tiered`` (KVBM needs it). ``paging`` is ``uma``
whose KV may exceed the memory it has (``resident_blocks``): the overflow pages to a swap
file (:mod:`spark_harness.sim.paging`; the v2.5 plan's UMA-pressure hypotheses).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from spark_harness.secrets import read_secret
from spark_harness.sim.profiles import (
    HardwareProfile,
    ModelProfile,
    ProfileError,
    hardware_profile,
    model_profile,
)

MODES = ("uma", "tiered", "paging")

#: O_DIRECT needs sizes and offsets aligned to the device's logical block; 4 KiB covers
#: every device in use (512 B and 4 KiB sectors).
IO_ALIGN = 4096


class SimConfigError(ValueError):
    """A ``sim:`` setting is invalid; the message names the key."""


@dataclass(frozen=True)
class SimConfig:
    """Resolved engine settings (see docs/SIMULATOR.md for each key)."""

    model: ModelProfile
    hardware: HardwareProfile
    mode: str = "uma"
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 8192
    #: an idle engine woken by a request waits this long for the rest of a burst before
    #: its first step (TensorRT-LLM's ``batch_wait_timeout_ms``, here only from idle)
    idle_batch_wait_ms: float = 0.0
    max_model_len: int = 0  # 0: the model profile's
    block_tokens: int = 16
    memory_fraction: float = 0.9
    g1_blocks: int = 0  # 0: derived from memory
    g2_blocks: int = 0
    g3_blocks: int = 0
    g3_dir: str | None = None
    g3_queue_depth: int = 4
    max_read_mb_s: float = 0.0  # the modeled drive's read rate cap; 0: the device alone
    byte_scale: float = 1.0
    prefix_reuse: bool = False
    resident_kv: bool = False  # G1 blocks with content are real memory (unified memory)
    eviction: str = "lru"
    disk_offload_filter: bool = False
    admission: str = "queue"
    kv_allocation: str = "reserve"
    lora_adapters: str | None = None
    lora_adapter_bytes: int = 64 * 2**20
    max_loras: int = 4
    lora_dir: str | None = None
    #: load the first ``max_loras`` adapters at start-up, before the server listens: a
    #: server that keeps its adapters resident, so a cold window reads none
    lora_preload: bool = False
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None  # the key from this environment variable (preferred)
    api_key_file: str | None = None  # or from this file: no secret in the spec
    seed: int = 0
    tokens_per_event: int = 1
    default_max_tokens: int = 16
    max_tokens_limit: int = 0  # 0: max_model_len
    max_request_bytes: int = 4 * 2**20
    max_concurrent_requests: int = 512
    body_timeout_s: float = 10.0  # a request body must arrive within this (else 408)
    idle_timeout_s: float = 30.0  # a connection without a complete request is closed
    write_timeout_s: float = 30.0  # a stream its client does not read for this long is cut
    natural_output_tokens: int | None = None
    resident_blocks: int = 0  # paging: G1 blocks that fit in memory (the rest pages)
    swap_dir: str | None = None  # paging: directory of the swap file (default workdir/swap)

    # ------------------------------------------------------------------ derived
    @property
    def block_bytes_full_scale(self) -> int:
        """Bytes of one KV block of the modeled engine (what timing uses)."""
        return self.model.kv_bytes_per_token * self.block_tokens

    @property
    def block_bytes(self) -> int:
        """Bytes of one KV block as written to G3: scaled, aligned for O_DIRECT."""
        return scaled_bytes(self.block_bytes_full_scale, self.byte_scale)

    @property
    def lora_file_bytes(self) -> int:
        return scaled_bytes(self.lora_adapter_bytes, self.byte_scale)

    def read_floor_s(self, nbytes: int) -> float:
        """The least a storage read of ``nbytes`` (a G3 block, a LoRA adapter) lasts under
        ``max_read_mb_s``; 0 without a cap."""
        cap = self.max_read_mb_s
        return nbytes / (cap * 1e6) if cap else 0.0

    @property
    def tiered(self) -> bool:
        return self.mode == "tiered"

    @property
    def paging(self) -> bool:
        return self.mode == "paging"

    @property
    def has_g3(self) -> bool:
        return self.tiered and self.g3_blocks > 0

    # ------------------------------------------------------------------ build
    @classmethod
    def from_sim(cls, sim: dict[str, Any]) -> SimConfig:
        """Build from a stack's ``sim:`` mapping; raise SimConfigError on bad values."""
        known = {f.name for f in fields(cls)} - {"model", "hardware"}
        known |= {"model_profile", "hardware_profile"}
        unknown = sorted(set(sim) - known)
        if unknown:
            raise SimConfigError(f"sim: unknown key(s) {unknown}")
        raw = dict(sim)
        try:
            model = model_profile(str(raw.pop("model_profile", "tiny")))
            hardware = hardware_profile(str(raw.pop("hardware_profile", "tiny-box")))
        except ProfileError as e:
            raise SimConfigError(f"sim: {e}") from e
        mode = raw.get("mode", "uma")
        if mode not in MODES:
            raise SimConfigError(f"sim.mode: {mode!r} is not one of {', '.join(MODES)}")
        tiered = mode == "tiered"
        raw.setdefault("prefix_reuse", tiered)
        cfg = cls(model=model, hardware=hardware, **raw)
        cfg = cfg._complete()
        cfg._check()
        return cfg

    def _complete(self) -> SimConfig:
        changes: dict[str, Any] = {}
        if not self.max_model_len:
            changes["max_model_len"] = self.model.max_model_len
        if not self.g1_blocks:
            budget = self.hardware.mem_bytes * self.memory_fraction - self.model.weight_bytes
            changes["g1_blocks"] = max(0, int(budget // self.block_bytes_full_scale))
        cfg = replace(self, **changes)
        if not cfg.max_tokens_limit:
            cfg = replace(cfg, max_tokens_limit=cfg.max_model_len)
        return cfg

    def _check(self) -> None:
        def need(cond: bool, key: str, what: str) -> None:
            if not cond:
                raise SimConfigError(f"sim.{key}: {what} (got {getattr(self, key)!r})")

        for key in (
            "max_num_seqs",
            "max_num_batched_tokens",
            "max_model_len",
            "block_tokens",
            "g3_queue_depth",
            "tokens_per_event",
            "default_max_tokens",
            "max_tokens_limit",
            "max_request_bytes",
            "max_concurrent_requests",
            "max_loras",
            "lora_adapter_bytes",
        ):
            value = getattr(self, key)
            need(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                key,
                "must be an integer >= 1",
            )
        for key in ("g2_blocks", "g3_blocks", "seed", "resident_blocks"):
            value = getattr(self, key)
            need(
                isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                key,
                "must be an integer >= 0",
            )
        need(
            isinstance(self.g1_blocks, int) and self.g1_blocks >= 1,
            "g1_blocks",
            "must be >= 1 (memory_fraction leaves no room for KV after the weights?)",
        )
        for key in ("body_timeout_s", "idle_timeout_s", "write_timeout_s"):
            value = getattr(self, key)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            need(ok and 0 < value < math.inf, key, "must be a number of seconds > 0")
        need(0 < self.memory_fraction <= 1, "memory_fraction", "must be in (0, 1]")
        need(0 < self.byte_scale <= 1, "byte_scale", "must be in (0, 1]")
        wait = self.idle_batch_wait_ms
        need(
            isinstance(wait, int | float) and not isinstance(wait, bool) and 0 <= wait <= 1000,
            "idle_batch_wait_ms",
            "must be a number of milliseconds in [0, 1000]",
        )
        cap = self.max_read_mb_s
        need(
            isinstance(cap, int | float) and not isinstance(cap, bool) and 0 <= cap < math.inf,
            "max_read_mb_s",
            "must be a number of MB/s >= 0 (0: no cap)",
        )
        need(self.eviction in ("lru", "lfu", "fifo"), "eviction", "must be lru, lfu or fifo")
        need(self.admission in ("queue", "reject"), "admission", "must be queue or reject")
        need(
            self.kv_allocation in ("reserve", "on_demand"),
            "kv_allocation",
            "must be reserve or on_demand",
        )
        for key in ("prefix_reuse", "disk_offload_filter", "resident_kv", "lora_preload"):
            need(isinstance(getattr(self, key), bool), key, "must be true or false")
        if self.natural_output_tokens is not None:
            need(
                isinstance(self.natural_output_tokens, int) and self.natural_output_tokens >= 1,
                "natural_output_tokens",
                "must be an integer >= 1 or null",
            )
        if not self.tiered:
            need(self.g2_blocks == 0, "g2_blocks", "mode uma has G1 only; use mode tiered")
            need(self.g3_blocks == 0, "g3_blocks", "mode uma has G1 only; use mode tiered")
            need(not self.disk_offload_filter, "disk_offload_filter", "needs mode tiered")
        if self.paging:
            need(
                1 <= self.resident_blocks <= self.g1_blocks,
                "resident_blocks",
                f"mode paging needs 1 <= resident_blocks <= g1_blocks ({self.g1_blocks})",
            )
        else:
            need(self.resident_blocks == 0, "resident_blocks", "needs mode paging")
            need(self.swap_dir is None, "swap_dir", "needs mode paging")
        need(
            self.max_tokens_limit <= self.max_model_len,
            "max_tokens_limit",
            f"must not exceed max_model_len {self.max_model_len}",
        )
        need(
            self.default_max_tokens <= self.max_tokens_limit,
            "default_max_tokens",
            f"must not exceed max_tokens_limit {self.max_tokens_limit}",
        )
        if self.lora_adapters is not None:
            need(
                isinstance(self.lora_adapters, str) and bool(self.lora_adapters),
                "lora_adapters",
                "must be the path of a file listing adapter names",
            )
        else:
            need(not self.lora_preload, "lora_preload", "needs lora_adapters")

    # ------------------------------------------------------------------ paths
    def g3_path(self, workdir: Path) -> Path | None:
        """Directory of the G3 tier, or None when there is no G3."""
        if not self.has_g3:
            return None
        return Path(self.g3_dir) if self.g3_dir else workdir / "g3"

    def swap_path(self, workdir: Path) -> Path | None:
        """Directory of the paging swap file, or None when the mode does not page."""
        if not self.paging:
            return None
        return Path(self.swap_dir) if self.swap_dir else workdir / "swap"

    def lora_path(self, workdir: Path) -> Path | None:
        if self.lora_adapters is None:
            return None
        return Path(self.lora_dir) if self.lora_dir else workdir / "lora"

    def secret_api_key(self) -> str | None:
        """The API key: ``api_key``, else read from ``api_key_env`` / ``api_key_file``
        (once, at start-up: raises SecretError when the reference cannot be read)."""
        return self.api_key or read_secret(self.api_key_env, self.api_key_file)

    def blocks_for(self, tokens: int) -> int:
        return math.ceil(tokens / self.block_tokens)


def scaled_bytes(full: int, scale: float) -> int:
    """``full * scale`` rounded up to whole aligned units, at least one unit."""
    units = max(1, math.ceil(full * scale / IO_ALIGN))
    return units * IO_ALIGN


def sim_config(spec: dict[str, Any]) -> SimConfig:
    """The engine settings of a resolved stack spec."""
    return SimConfig.from_sim(dict(spec.get("sim") or {}))


def endpoint_facts(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """What the endpoint file needs to know about this simulator, without starting it."""
    cfg = sim_config(spec)
    # the directory whose device telemetry watches: G3, or the swap file when paging
    g3 = cfg.g3_path(workdir) or cfg.swap_path(workdir)
    lora = cfg.lora_path(workdir)
    return {
        "g3_dir": str(g3) if g3 is not None else None,
        "block_bytes": cfg.block_bytes,
        "block_bytes_full_scale": cfg.block_bytes_full_scale,
        "max_num_tokens": cfg.max_model_len,
        "lora_dir": str(lora) if lora is not None else None,
        # where clients read the key (never the key itself): serving.readiness, loadgen
        "api_key_env": cfg.api_key_env,
        "api_key_file": cfg.api_key_file,
    }
