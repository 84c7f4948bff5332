"""The plan of the synthetic-data tests (analysis, figures, notebook): the repository's
stacks and hypotheses, with the sweeps those tests were written for."""

from __future__ import annotations

import copy
from typing import Any

from spark_harness.analysis.thresholds import MIN_REPETITIONS
from spark_harness.plan import Plan, load_config
from tests.conftest import REPO

#: The sweeps the planted-effect tests were written for. The demo plan's own sweeps are
#: tuned to the simulator and the time budget and may change; these tests must not.
PINNED: dict[str, dict[str, Any]] = {
    "H0": {
        "sweep": [
            {
                "key": "load.users",
                "role": "concurrency",
                "name": "users",
                "values": [1, 2, 4, 8, 16],
            }
        ],
        "workload": {"kind": "fixed_context", "context_tokens": 256, "output_tokens": 16},
    },
    # A's p99 under QoS at the middle of H2A's contexts: fio's own iowait on A is then
    # uncorrelated with A's p99 over H2A + H4A, as H8A's planted truth needs
    "H4A": {
        "workload": {
            "kind": "fixed_context",
            "context_tokens": 1024,
            "output_tokens": 16,
            "nonce": True,
        }
    },
    "H4B": {
        "workload": {
            "kind": "fixed_context",
            "context_tokens": 2048,
            "output_tokens": 16,
            "nonce": True,
        },
        "sweep": [
            {
                "key": "qos.profile",
                "role": "qos_profile",
                "name": "qos",
                "values": ["none", "moderate", "heavy"],
            }
        ],
    },
    "H5": {
        "sweep": [
            {
                "key": "workload.sessions",
                "role": "working_set",
                "name": "sessions",
                "values": [4, 16, 64],
            }
        ]
    },
    "H6": {
        "workload": {
            "kind": "fixed_context",
            "context_tokens": 2048,
            "output_tokens": 16,
            "nonce": True,
        },
        "sweep": [
            {
                "key": "server.sim.g2_blocks",
                "role": "tier_capacity",
                "name": "g2",
                "values": [128, 1024],
            },
            {
                "key": "server.sim.eviction",
                "role": "eviction_policy",
                "name": "policy",
                "values": ["lru", "lfu", "fifo"],
            },
        ],
    },
    **{
        h: {
            "workload": {
                "kind": "fixed_context",
                "context_tokens": 256,
                "output_tokens": 16,
                "output_tokens_spread": 0.5,
                "nonce": True,
            },
            "sweep": [
                {
                    "key": "workload.context_tokens",
                    "role": "context",
                    "name": "ctx",
                    "values": [256, 512, 1024, 2048],
                }
            ],
        }
        for h in ("H2A", "H2B")
    },
}


def make_plan(
    hypotheses: dict[str, dict[str, Any]] | None = None, repetitions: int = MIN_REPETITIONS
) -> Plan:
    """The repository's plan, sweeps pinned as in :data:`PINNED` and every hypothesis at
    ``repetitions`` (the demo's own counts dropped); with ``hypotheses``, only those,
    their entries overriding the repository's."""
    cfg = load_config(REPO / "config" / "config.yaml")
    base = {
        h: {**{k: v for k, v in e.items() if k != "repetitions"}, **PINNED.get(h, {})}
        for h, e in cfg["hypotheses"].items()
    }
    if hypotheses is None:
        hypotheses = {h: {} for h in base}
    hyps = {h: {**copy.deepcopy(base.get(h, {})), **over} for h, over in hypotheses.items()}
    cfg = {**cfg, "hypotheses": hyps, "defaults": {**cfg["defaults"], "repetitions": repetitions}}
    return Plan(cfg, base_dir=REPO)
