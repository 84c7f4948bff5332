"""Which sweep axis of a plan entry is which: evaluators find their axis by its role.

Every sweep axis declares its ``role`` in the config (the swept quantity: concurrency,
context, working set, ...), so an evaluator finds its axis on any plan, demo or real,
whatever dotted key sets it there (``server.sim.g2_blocks`` in the demo,
``server.params.cpu_cache_gb`` on the Spark).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The roles a sweep axis may declare (the schema's enum lists the same).
ROLES = (
    "concurrency",
    "context",
    "working_set",
    "tier_capacity",
    "eviction_policy",
    "qos_profile",
    "mode",
    "adapter_cache",
    "adapters",
    "memory",
)


class AxisRoleError(ValueError):
    """A hypothesis's plan has no sweep axis of the role its evaluator needs."""


def keys(hyp: str, config: Mapping[str, Any], role: str) -> list[str]:
    """Dotted keys of every sweep axis of ``role`` in a plan entry, in plan order."""
    if role not in ROLES:
        raise ValueError(f"unknown axis role {role!r} (known: {', '.join(ROLES)})")
    return [ax["key"] for ax in config.get("sweep", []) or [] if ax.get("role") == role]


def find(hyp: str, config: Mapping[str, Any], role: str) -> str | None:
    """The key of the sweep axis of ``role``, or None when the plan does not sweep it."""
    found = keys(hyp, config, role)
    if len(found) > 1:
        raise AxisRoleError(f"{hyp}: more than one sweep axis has role {role!r}: {found}")
    return found[0] if found else None


def require(hyp: str, config: Mapping[str, Any], role: str) -> str:
    """The key of the sweep axis of ``role``; a clear error when the plan lacks it."""
    key = find(hyp, config, role)
    if key is None:
        declared = {ax.get("key"): ax.get("role") for ax in config.get("sweep", []) or []}
        raise AxisRoleError(
            f"{hyp}: its evaluator needs a sweep axis with role {role!r}; the plan's axes"
            f" declare {declared or 'none'}"
        )
    return key
