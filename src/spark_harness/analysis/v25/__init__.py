"""Evaluators of the legacy v2.5 plan (config/plan_v2.5.yaml, docs/LEGACY.md).

v2.5 numbers its hypotheses H0..H8 with meanings of its own; a plan with ``track: v2.5``
is evaluated with these (``analysis.summarize(..., track="v2.5")``). H0 (queue knee,
U_work) and H1 (cold vs warm LoRA) are the v3 rules unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from spark_harness.analysis.evidence import Context
from spark_harness.analysis.hypotheses import h0, h1
from spark_harness.analysis.v25 import iowait, lora, paging
from spark_harness.analysis.verdict import Verdict

EVALUATORS: dict[str, Callable[[Context], Verdict]] = {
    "H0": h0.evaluate,
    "H1": h1.evaluate,
    "H2": paging.evaluate_knee,
    "H3": paging.evaluate_counters,
    "H4": paging.evaluate_qos,
    "H5": lora.evaluate_working_set,
    "H6": lora.evaluate_storm,
    "H7": lora.evaluate_device_reads,
    "H8": iowait.evaluate,
}
