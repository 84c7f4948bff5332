"""Stack A against Stack B on one chart, where the plan compares the stacks.

Each :class:`spark_harness.registry.Comparison` names two hypotheses (the A and the B
side of one question) and the table both evaluators write; the chart draws both on the
same axes in the stacks' colours, with each side's verdict in the title, and writes the
CSV of exactly what it drew.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import polars as pl

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn
from spark_harness.plots.render import write_csv
from spark_harness.registry import Comparison


def _side(summary: Summary, c: Comparison) -> pl.DataFrame | None:
    """One hypothesis's rows of the compared table, tagged with it (None: nothing to draw)."""
    table = summary.table(c.table)
    if table is None or table.height == 0 or not {c.x, c.y} <= set(table.columns):
        return None
    summary.require(table, c.table, ["stack"])
    return table.select("stack", c.x, c.y, *[k for k in ("point", "rep") if k in table.columns])


def draw(c: Comparison, a: Summary, b: Summary) -> Drawn:
    """The chart of ``c`` from the summaries of its A and its B hypothesis."""
    fig, (ax,) = style.new_figure(1, height=4.2)
    drawn = []
    for summary in (a, b):
        side = _side(summary, c)
        if side is None:
            continue
        side = side.with_columns(pl.lit(summary.hyp).alias("hyp")).sort(c.x)
        drawn.append(side)
        for (stack,), sub in side.group_by("stack", maintain_order=True):
            colour, marker = style.stack_colour(str(stack)), style.stack_marker(str(stack))
            label = f"Stack {stack} ({summary.hyp})"
            if c.curve:
                ax.plot(sub[c.x], sub[c.y], "-", color=colour, marker=marker, label=label)
            else:
                ax.scatter(sub[c.x], sub[c.y], color=colour, marker=marker, s=28, label=label)
    if not drawn:
        style.empty_panel(ax, f"no data to draw: neither {a.hyp} nor {b.hyp} wrote {c.table}")
        table = pl.DataFrame({"note": [f"no rows in {c.table}"]})
    else:
        table = pl.concat(drawn, how="diagonal_relaxed")
        ax.legend(loc="best", fontsize=8)
        if c.log2_x:
            panels.log2_axis(ax, sorted(table[c.x].unique().to_list()))
    ax.set_xlabel(c.x_label or c.x)
    ax.set_ylabel(c.y_label or c.y)
    # one line per side: its hypothesis and its verdict with the deciding numbers
    sides = [textwrap.shorten(f"{s.hyp}: {s.verdict.headline()}", 130) for s in (a, b)]
    fig.suptitle("\n".join([c.what, *sides]), fontsize=9, x=0.01, ha="left")
    return fig, table


def render(c: Comparison, a_dir: Path, b_dir: Path, png: Path, svg: Path, csv: Path) -> None:
    """Draw ``c`` from two summary folders and write PNG, SVG and CSV."""
    with style.styled():
        fig, table = draw(c, Summary(Path(a_dir)), Summary(Path(b_dir)))
        style.save(fig, Path(png), Path(svg))
    write_csv(table, Path(csv))
