"""H8A and H8B: CPU iowait and device read await per run against TTFT p99.

Runs come from the source hypotheses (H2A/H4A for A, H2B/H4B for B), shaped by source.
H8B's correlations use only runs with NVMe engaged (G3 onboards > 0): the others are
drawn hollow. H8A shows the ±1 pp band within which iowait counts as flat.
"""

from __future__ import annotations

from spark_harness.analysis import thresholds as T
from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary, number
from spark_harness.plots.panels import Drawn
from spark_harness.plots.verdicts import fmt, fmt_ci
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
        mean = number(table["iowait_pct"].mean())
        if mean is not None:
            top.axhspan(
                max(mean - T.FLAT_IOWAIT_PP, 0),
                mean + T.FLAT_IOWAIT_PP,
                color=style.GREY,
                alpha=0.12,
                lw=0,
            )
        c = v.criterion("iowait_vs_p99_near_zero") or {}
        change = (c.get("details") or {}).get("change_of_iowait_pct_over_p99_range")
        if change:
            text = f"{fmt(change.get('value'))} pp ({fmt_ci(change.get('ci'))})"
            style.note(
                top,
                f"iowait change across the p99 range: {text}; flat: within ±1 pp (band)",
                "lower right",
            )
        panels.criterion_title(top, v, "iowait_vs_p99_near_zero", "Pearson r(iowait, p99)")
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
