"""The legacy v2.5 plan (``track: v2.5``, config/plan_v2.5.yaml, docs/LEGACY.md), behind
one boundary.

v2.5 numbers its hypotheses H0..H8 with meanings of its own. Its evaluators
(:mod:`.analysis`) and figures (:mod:`.plots`) live here and are reached only through
:data:`HYPOTHESES`, which :func:`spark_harness.registry.load` returns for a v2.5 plan:
no v3 module imports this package. H0 and H1 are the v3 rules and figures unchanged.
"""

from __future__ import annotations

from spark_harness.registry import BUILTIN, Figure, Hypothesis

E = "spark_harness.legacy.analysis"
P = "spark_harness.legacy.plots"
_V3 = {h.id: h for h in BUILTIN}


def _v25(
    hyp: str, title: str, stacks: tuple[str, ...], evaluator: str, figure: str, table: str
) -> Hypothesis:
    """A v2.5 rule of its own: one evaluator, one scatter figure over one table."""
    return Hypothesis(
        hyp, title, stacks, f"{E}.{evaluator}", (Figure(figure, f"{P}:{figure}", table),)
    )


HYPOTHESES: tuple[Hypothesis, ...] = (
    _V3["H0"],
    _V3["H1"],
    _v25(
        "H2",
        "UMA pressure hockey stick: paging past unified memory raises p99 and device reads",
        ("P",),
        "paging:evaluate_knee",
        "p99_vs_pressure",
        "fig_paging_knee.csv",
    ),
    _v25(
        "H3",
        "OS paging and swap counters track the H2 knee",
        ("P",),
        "paging:evaluate_counters",
        "p99_vs_os_paging",
        "fig_counters_vs_p99.csv",
    ),
    _v25(
        "H4",
        "Degraded storage QoS raises p99 under paging",
        ("P",),
        "paging:evaluate_qos",
        "p99_vs_qos",
        "fig_qos_paging.csv",
    ),
    _v25(
        "H5",
        "A larger LoRA working set raises p99 and device IOPS",
        ("A",),
        "lora:evaluate_working_set",
        "p99_vs_adapters",
        "fig_lora_working_set.csv",
    ),
    _v25(
        "H6",
        "A LoRA storm raises p99 over the baseline workload",
        ("A",),
        "lora:evaluate_storm",
        "p99_storm_vs_baseline",
        "fig_lora_storm.csv",
    ),
    _v25(
        "H7",
        "Device read counters track LoRA adapter loads",
        ("A",),
        "lora:evaluate_device_reads",
        "device_vs_lora_bytes",
        "fig_device_vs_lora.csv",
    ),
    _v25(
        "H8",
        "iowait and read await track the storage-bound tails",
        ("P",),
        "iowait:evaluate",
        "iowait_vs_p99",
        "fig_iowait_vs_p99.csv",
    ),
)
