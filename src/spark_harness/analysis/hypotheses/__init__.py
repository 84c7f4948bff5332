"""One evaluator per hypothesis of docs/PLAN.md (``h*.py``): ``EVALUATORS[hyp](ctx) -> Verdict``.

Which function evaluates which hypothesis is stated once, in :mod:`spark_harness.registry`;
this mapping is read from it.
"""

from __future__ import annotations

from collections.abc import Callable

from spark_harness.analysis.evidence import Context
from spark_harness.analysis.verdict import Verdict
from spark_harness.registry import BUILTIN

EVALUATORS: dict[str, Callable[[Context], Verdict]] = {h.id: h.evaluate() for h in BUILTIN}
