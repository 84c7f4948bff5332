"""One evaluator per hypothesis of HYPOTHESES.md: ``EVALUATORS[hyp](ctx) -> Verdict``."""

from __future__ import annotations

from collections.abc import Callable

from spark_harness.analysis.evidence import Context
from spark_harness.analysis.hypotheses import h0, h1, h2, h3, h4, h5, h6, h7, h8, h9
from spark_harness.analysis.verdict import Verdict

EVALUATORS: dict[str, Callable[[Context], Verdict]] = {
    "H0": h0.evaluate,
    "H1": h1.evaluate,
    "H2A": h2.evaluate_a,
    "H2B": h2.evaluate_b,
    "H3": h3.evaluate,
    "H4A": h4.evaluate_a,
    "H4B": h4.evaluate_b,
    "H5": h5.evaluate,
    "H6": h6.evaluate,
    "H7": h7.evaluate,
    "H8A": h8.evaluate_a,
    "H8B": h8.evaluate_b,
    "H9": h9.evaluate,
}
