"""H8A and H8B: CPU iowait and device read await per run against TTFT p99.

Runs come from the source hypotheses (H2A/H4A for A, H2B/H4B for B), shaped by source.
H8B's correlations use only runs with NVMe engaged (G3 onboards > 0): the others are
drawn hollow. H8A's title says, per source, whether iowait and p99 were found decoupled.
"""

from __future__ import annotations

import textwrap

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn
from spark_harness.verdict_contract import figure_table

TABLE = figure_table("iowait_vs_p99")
WHAT_A = "CPU iowait and device read await per run vs TTFT p99, Stack A (runs of H2A and H4A)"
WHAT_B = "CPU iowait and device read await per run vs TTFT p99, Stack B (runs of H2B and H4B)"


def _draw(summary: Summary, what: str, engaged_only: bool) -> Drawn:
    table = summary.table(TABLE)
    if table is None or table.height == 0:
        return panels.placeholder(summary, what)
    summary.require(table, TABLE, ["hyp", "stack", "iowait_pct", "read_await_ms", "ttft_p99"])
    table = table.sort("stack", "hyp", "point", "rep")
    engaged = table["nvme_engaged"] if "nvme_engaged" in table.columns else None
    hollow = ~engaged if engaged_only and engaged is not None else None
    fig, (top, bottom) = style.new_figure(2, height=6.2)
    for ax, y in ((top, "iowait_pct"), (bottom, "read_await_ms")):
        panels.scatter_runs(
            ax, table, "ttft_p99", y, marker_by="hyp", markers=style.SOURCE_MARKERS, hollow=hollow
        )
    v = summary.verdict
    if engaged_only:
        panels.criterion_title(top, v, "iowait_tracks_p99", "Pearson r(iowait, p99), NVMe engaged")
        panels.criterion_title(
            bottom, v, "await_tracks_p99", "Pearson r(read await, p99), NVMe engaged"
        )
        if hollow is not None and hollow.any():
            style.note(
                top, "hollow: runs without G3 onboards (not in the correlation)", "lower right"
            )
    else:
        decoupled = [
            c for c in v.criteria if str(c.get("name", "")).startswith("iowait_p99_decoupled_")
        ]
        text = "; ".join(
            f"{str(c['name']).removeprefix('iowait_p99_decoupled_')}: "
            f"{v.measured(c)} — {c.get('status')}"
            for c in decoupled
        )
        if text:
            top.set_title(
                textwrap.fill(f"iowait and p99 decoupled per source ({text})", 110),
                loc="left",
                fontsize=8,
            )
    top.set_ylim(bottom=0)
    bottom.set_ylim(bottom=0)
    top.set_ylabel("CPU iowait (% of all CPUs)")
    bottom.set_ylabel("device read await (ms)")
    bottom.set_xlabel("TTFT p99 per run (ms)")
    panels.source_legend(top, table)
    return panels.finish(fig, summary, what), table


def iowait_vs_p99_a(summary: Summary) -> Drawn:
    return _draw(summary, WHAT_A, engaged_only=False)


def iowait_vs_p99_b(summary: Summary) -> Drawn:
    return _draw(summary, WHAT_B, engaged_only=True)
