"""The evidence figures of every hypothesis of HYPOTHESES.md: ``FIGURES[hyp]``."""

from __future__ import annotations

from spark_harness.plots.hypotheses import h0, h1, h2, h3, h4, h5, h6, h7, h8, h9
from spark_harness.plots.panels import FigureSpec

FIGURES: dict[str, list[FigureSpec]] = {
    "H0": h0.FIGURES,
    "H1": h1.FIGURES,
    "H2A": h2.FIGURES_A,
    "H2B": h2.FIGURES_B,
    "H3": h3.FIGURES,
    "H4A": h4.FIGURES_A,
    "H4B": h4.FIGURES_B,
    "H5": h5.FIGURES,
    "H6": h6.FIGURES,
    "H7": h7.FIGURES,
    "H8A": h8.FIGURES_A,
    "H8B": h8.FIGURES_B,
    "H9": h9.FIGURES,
}
