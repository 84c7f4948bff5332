"""One look for every figure: colours, line styles, markers, figure creation and saving.

Why one module: a reader compares figures across hypotheses, so Stack A must be the same
blue and Stack B the same vermillion everywhere, p99 always the solid line, G3 always
the same purple. Colours are from the Okabe-Ito palette (distinguishable with the
common colour-vision deficiencies); the B0/B1/B2 modes of H9 are tints of B's colour
(they are variants of Stack B), told apart by lightness and by hatch/marker as well.

Figures are ``matplotlib.figure.Figure`` objects, never pyplot state: drawing needs no
GUI backend and leaves no global figure behind in a long-running process or notebook.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.typing import LineStyleType, RcKeyType

from spark_harness.files import atomic_writer

# Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
GREY = "#7F7F7F"


def tint(colour: str, amount: float) -> str:
    """``colour`` mixed with white (0: unchanged, 1: white)."""
    rgb = matplotlib.colors.to_rgb(colour)
    r, g, b = (c + (1 - c) * amount for c in rgb)
    return matplotlib.colors.to_hex((r, g, b))


#: Fixed colours per stack name. B0/B1/B2 are H9's KVBM modes of Stack B.
STACK_COLOURS = {
    "A": OKABE_ITO["blue"],
    "B": OKABE_ITO["vermillion"],
    "B2": OKABE_ITO["vermillion"],  # host + disk: the full tiered stack
    "B1": tint(OKABE_ITO["vermillion"], 0.4),  # host tier only
    "B0": tint(OKABE_ITO["vermillion"], 0.7),  # no offload
}
#: Colours for stacks a config names otherwise (stable: chosen by the name's hash).
_OTHER_STACKS = [OKABE_ITO[k] for k in ("bluish_green", "reddish_purple", "sky_blue", "black")]
STACK_MARKERS = {"A": "o", "B": "s", "B0": "^", "B1": "D", "B2": "s"}
STACK_HATCHES = {"B0": "", "B1": "//", "B2": "xx"}

#: TTFT percentiles: the tail is the solid line.
PERCENTILE_STYLES: dict[str, LineStyleType] = {"p50": ":", "p95": "--", "p99": "-"}

#: KV tiers (and prompt tokens computed afresh, "miss").
TIER_COLOURS = {
    "g1": OKABE_ITO["bluish_green"],
    "g2": OKABE_ITO["sky_blue"],
    "g3": OKABE_ITO["reddish_purple"],
    "miss": GREY,
}
TIER_LABELS = {
    "g1": "G1 (GPU)",
    "g2": "G2 (host)",
    "g3": "G3 (NVMe)",
    "miss": "computed (no reuse)",
}

#: Storage QoS (fio contention) profiles and H6 eviction policies: shape, not colour,
#: so the stack colour stays free to say which stack a point belongs to.
PROFILE_MARKERS = {"none": "o", "moderate": "s", "heavy": "^"}
POLICY_STYLES: dict[str, tuple[LineStyleType, str]] = {
    "lru": ("-", "o"),
    "lfu": ("--", "s"),
    "fifo": (":", "^"),
}
#: Source hypotheses of the analytical ones (H3, H7, H8): marker per source.
SOURCE_MARKERS = {"H2A": "o", "H2B": "o", "H4A": "s", "H4B": "s", "H0": "D"}
#: Sequence for categories without a fixed marker.
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]

#: Figure widths in inches; heights follow the number of panels.
WIDTH = 7.5
PANEL_HEIGHT = 2.7
DPI = 110

RC: dict[RcKeyType, Any] = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "svg.hashsalt": "spark-harness",  # stable SVG ids: a redraw of equal data is equal
    "svg.fonttype": "none",
}


def stack_colour(stack: str) -> str:
    """The colour of a stack in every figure."""
    if stack in STACK_COLOURS:
        return STACK_COLOURS[stack]
    return _OTHER_STACKS[zlib.crc32(stack.encode()) % len(_OTHER_STACKS)]


def stack_marker(stack: str) -> str:
    return STACK_MARKERS.get(stack, "o")


@contextmanager
def styled() -> Iterator[None]:
    """Apply the harness style to everything drawn (and saved) inside the block."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(
    rows: int = 1,
    cols: int = 1,
    *,
    sharex: bool = True,
    height: float = 0.0,
    margins: dict[str, float] | None = None,
) -> tuple[Figure, Any]:
    """A figure with ``rows`` x ``cols`` panels; the axes come as a flat array, row by row.

    Evidence figures use matplotlib's constrained layout; figures drawn by the dozen (the
    per-point time series) pass fixed ``margins`` (``subplots_adjust`` arguments), which
    halves their drawing time.
    """
    fig = Figure(
        figsize=(WIDTH, height or 1.1 + PANEL_HEIGHT * rows),
        layout=None if margins else "constrained",
    )
    if margins:
        fig.subplots_adjust(**margins)
    axes = fig.subplots(rows, cols, sharex=sharex, squeeze=False)
    return fig, axes.ravel()


def note(ax: Axes, text: str, corner: str = "upper left") -> None:
    """A short note in a corner of a panel (evidence in numbers, why a series is absent)."""
    v, h = corner.split()
    ax.text(
        0.01 if h == "left" else 0.99,
        0.97 if v == "upper" else 0.03,
        text,
        transform=ax.transAxes,
        va="top" if v == "upper" else "bottom",
        ha=h,
        fontsize=7.5,
        color=GREY,
        wrap=True,
    )


def empty_panel(ax: Axes, text: str) -> None:
    """A panel without data says why, in its middle, instead of showing empty axes.

    Only the y axis is cleared: the x axis may be shared with panels that have data."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color=GREY, wrap=True)
    ax.set_yticks([])
    ax.grid(False)


def save(fig: Figure, png: Path, svg: Path | None = None) -> None:
    """Write the PNG (and the SVG) atomically: a half-written figure never has its name."""
    for path, fmt in ((png, "png"), (svg, "svg")):
        if path is None:
            continue
        meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
        with atomic_writer(path, "wb") as fh:
            fig.savefig(fh, format=fmt, metadata=meta)
