"""Model and hardware profiles: the published figures the simulator's step times come from.

Profiles ship as package data (``sim/profiles/*.yaml``) so a stack file names them
(``model_profile: llama-3.1-8b``, ``hardware_profile: dgx-spark``) instead of repeating
numbers. Every field is required; a typo or a missing number is an error at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from typing import Any

import yaml


class ProfileError(ValueError):
    """A profile is unknown or malformed; the message names it."""


@dataclass(frozen=True)
class ModelProfile:
    """Per-step costs of one model (see ``profiles/models.yaml`` for the formula)."""

    name: str
    description: str
    kv_bytes_per_token: int
    weight_bytes: int
    step_overhead_ms: float
    prefill_tokens_per_s: float
    attention_ns_per_token2: float
    seq_cost_ms: float
    max_model_len: int


@dataclass(frozen=True)
class HardwareProfile:
    """Memory size and bandwidths of one machine; disk is measured, so it is absent."""

    name: str
    description: str
    mem_bytes: int
    mem_gbps: float
    mem_efficiency: float
    host_link_gbps: float

    @property
    def effective_bytes_per_s(self) -> float:
        """Bandwidth a decode step streams weights and KV at."""
        return self.mem_gbps * 1e9 * self.mem_efficiency


def _build(cls: type, name: str, raw: dict[str, Any], file: str) -> Any:
    wanted = {f.name for f in fields(cls)} - {"name"}
    missing = sorted(wanted - raw.keys())
    extra = sorted(raw.keys() - wanted)
    if missing or extra:
        raise ProfileError(f"{file}: profile {name!r}: missing {missing}, unknown {extra}")
    obj = cls(name=name, **raw)
    for f in fields(cls):
        value = getattr(obj, f.name)
        if f.name not in ("name", "description") and not (
            isinstance(value, int | float) and value > 0
        ):
            raise ProfileError(f"{file}: profile {name!r}: {f.name} must be a positive number")
    return obj


@cache
def _load(file: str, cls: type) -> dict[str, Any]:
    text = resources.files(__package__).joinpath("profiles", file).read_text()
    raw = yaml.safe_load(text) or {}
    return {name: _build(cls, name, body, file) for name, body in raw.items()}


def model_profile(name: str) -> ModelProfile:
    profiles = _load("models.yaml", ModelProfile)
    if name not in profiles:
        raise ProfileError(f"unknown model_profile {name!r} (have: {', '.join(profiles)})")
    return profiles[name]


def hardware_profile(name: str) -> HardwareProfile:
    profiles = _load("hardware.yaml", HardwareProfile)
    if name not in profiles:
        raise ProfileError(f"unknown hardware_profile {name!r} (have: {', '.join(profiles)})")
    return profiles[name]
