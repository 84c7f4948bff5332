"""The unified-memory budget of a point, checked before its server starts.

On a DGX Spark the GPU's KV cache (G1), KVBM's pinned host cache (G2) and the weights
share one 128 GB memory: a host tier shrinks what the GPU may take, and a point whose
parts add up to more than the memory fails minutes into start-up (or swaps). A stack
declares its budget in ``params`` (``memory_gb``, ``weights_gb``, ``headroom_gb``,
``free_gpu_memory_fraction``, ``cpu_cache_gb``); the plan checks every point with it,
so an impossible point fails the plan before anything runs, naming the numbers.

G1 is sized the way TensorRT-LLM sizes it: ``free_gpu_memory_fraction`` of the memory
free once the weights are loaded (memory - headroom - weights). The sum is an upper
bound: should KVBM pin its host cache before the engine measures free memory, G1 only
gets smaller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: params a stack sets to have its points checked (``memory_gb`` switches the check on)
REQUIRED = ("memory_gb", "weights_gb", "headroom_gb", "free_gpu_memory_fraction")


class BudgetError(ValueError):
    """A point's parts do not fit the memory, or its budget params are unusable."""


@dataclass(frozen=True)
class Budget:
    """What one point asks of unified memory, in GB."""

    memory_gb: float
    weights_gb: float
    headroom_gb: float
    fraction: float
    host_cache_gb: float

    @property
    def g1_gb(self) -> float:
        return self.fraction * max(0.0, self.memory_gb - self.headroom_gb - self.weights_gb)

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.g1_gb + self.host_cache_gb + self.headroom_gb

    def describe(self) -> str:
        return (
            f"weights {self.weights_gb:.1f} + G1 {self.g1_gb:.1f} "
            f"({self.fraction:g} of {self.memory_gb - self.headroom_gb - self.weights_gb:.1f} "
            f"free) + pinned host cache {self.host_cache_gb:.1f} + headroom "
            f"{self.headroom_gb:.1f} = {self.total_gb:.1f} GB"
        )


def _number(params: Mapping[str, Any], key: str) -> float:
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BudgetError(f"params.{key} must be a number for the memory budget, got {value!r}")
    return float(value)


def budget(server: Mapping[str, Any]) -> Budget | None:
    """The budget a resolved stack declares, or ``None`` when it declares none."""
    params = server.get("params") or {}
    if params.get("memory_gb") is None:
        return None
    values = {key: _number(params, key) for key in REQUIRED}
    host = params.get("cpu_cache_gb")  # null: no host tier (KVBM off)
    return Budget(
        memory_gb=values["memory_gb"],
        weights_gb=values["weights_gb"],
        headroom_gb=values["headroom_gb"],
        fraction=values["free_gpu_memory_fraction"],
        host_cache_gb=0.0 if host is None else _number(params, "cpu_cache_gb"),
    )


def check_budget(server: Mapping[str, Any]) -> Budget | None:
    """Raise :class:`BudgetError` with the numbers when a point cannot fit its memory."""
    b = budget(server)
    if b is not None and b.total_gb > b.memory_gb:
        raise BudgetError(
            f"memory budget exceeded: {b.describe()} > {b.memory_gb:.0f} GB unified memory "
            f"(lower free_gpu_memory_fraction or cpu_cache_gb)"
        )
    return b
