"""The evidence figures of every hypothesis of docs/PLAN.md: one module per hypothesis.

Which function draws which figure is stated in :mod:`spark_harness.registry`;
``FIGURES[hyp]`` is that code, resolved (for benchmarks and tests).
"""

from __future__ import annotations

from spark_harness.plots.panels import FigureSpec
from spark_harness.registry import BUILTIN, resolve

FIGURES: dict[str, list[FigureSpec]] = {
    h.id: [FigureSpec(f.name, resolve(f.draw)) for f in h.figures] for h in BUILTIN
}
