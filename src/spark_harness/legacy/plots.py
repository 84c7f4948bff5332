"""Evidence figures of the legacy v2.5 plan (``track: v2.5``, docs/LEGACY.md).

H0 and H1 are the v3 rules, so they keep the v3 figures. Every other v2.5 figure is one
per-run scatter in up to two panels over the table its evaluator wrote
(:mod:`spark_harness.legacy.analysis`): TTFT p50/p99 (and a storage counter below)
against the quantity the rule is about, with the per-point means joined and the rule's
criterion in each title.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl

from spark_harness.plots import panels, style
from spark_harness.plots.data import Summary
from spark_harness.plots.panels import Drawn


@dataclass(frozen=True)
class Panel:
    """One panel: columns drawn against the figure's x, the criterion in its title."""

    ys: tuple[str, ...]
    label: str
    criterion: str = ""


@dataclass(frozen=True)
class Scatter:
    """A v2.5 evidence figure: which table, which x, which panels."""

    table: str
    x: str
    x_label: str
    panels: tuple[Panel, ...]
    what: str
    log2: bool = False
    ticks: tuple[tuple[float, str], ...] = ()


MARKERS = {"ttft_p99": "o", "ttft_p50": "v"}


def draw_scatter(spec: Scatter, summary: Summary) -> Drawn:
    table = summary.table(spec.table)
    if table is None or table.height == 0:
        return panels.placeholder(summary, spec.what)
    needed = [spec.x, "stack", *[y for p in spec.panels for y in p.ys[:1]]]
    summary.require(table, spec.table, needed)
    shown = [p for p in spec.panels if all(y in table.columns for y in p.ys)]
    fig, axes = style.new_figure(len(shown), height=3.0 + 2.6 * (len(shown) - 1))
    table = table.sort("stack", spec.x)
    for ax, panel in zip(axes, shown, strict=True):
        for (stack,), sub in table.group_by("stack", maintain_order=True):
            colour = style.stack_colour(str(stack))
            for y in panel.ys:
                x = sub[spec.x].cast(pl.Float64).to_numpy()
                v = sub[y].cast(pl.Float64).to_numpy()
                ax.scatter(x, v, color=colour, marker=MARKERS.get(y, "o"), s=24, zorder=3)
                means = sub.group_by(spec.x).agg(pl.col(y).mean()).sort(spec.x)
                ax.plot(
                    means[spec.x].to_numpy(),
                    means[y].to_numpy(),
                    color=colour,
                    linestyle=style.PERCENTILE_STYLES.get(y.removeprefix("ttft_"), "-"),
                    linewidth=1.1,
                )
        if "knee" in table.columns:
            knees = table.filter(pl.col("knee").cast(pl.Boolean))
            if knees.height:
                panels.mark_x(ax, float(np.min(knees[spec.x].to_numpy())), style.GREY, "knee")
        if panel.criterion:
            panels.criterion_title(ax, summary.verdict, panel.criterion)
        ax.set_ylabel(panel.label)
        ax.margins(y=0.15)
    if spec.log2:
        panels.log2_axis(axes[-1], sorted(set(table[spec.x].cast(pl.Float64).to_list())))
    if spec.ticks:
        axes[-1].set_xticks([t for t, _ in spec.ticks], [n for _, n in spec.ticks])
    axes[-1].set_xlabel(spec.x_label)
    extra = [
        (
            f"TTFT {y.removeprefix('ttft_')}",
            {
                "color": "black",
                "marker": MARKERS[y],
                "linestyle": style.PERCENTILE_STYLES[y.removeprefix("ttft_")],
            },
        )
        for y in shown[0].ys
        if y in MARKERS
    ]
    panels.legend(axes[0], table["stack"].unique(maintain_order=True).to_list(), extra=extra)
    return panels.finish(fig, summary, spec.what), table


TTFT = Panel(("ttft_p50", "ttft_p99"), "TTFT per run (ms)")

SCATTERS: dict[str, dict[str, Scatter]] = {
    "H2": {
        "p99_vs_pressure": Scatter(
            "fig_paging_knee.csv",
            "pressure",
            "KV demand / unified memory (resident blocks)",
            (
                Panel(TTFT.ys, TTFT.label, "p99_ratio_at_knee"),
                Panel(("read_iops",), "device reads (IOPS)", "device_reads_rise_at_knee"),
            ),
            "TTFT p50/p99 and device reads per run vs UMA pressure (stack P, paging)",
        )
    },
    "H3": {
        "p99_vs_os_paging": Scatter(
            "fig_counters_vs_p99.csv",
            "ttft_p99",
            "TTFT p99 per run (ms)",
            (
                Panel(("os_paging_per_s",), "OS major faults + swap-ins (/s)", "r_os_paging_p99"),
                Panel(("paging_faults",), "server page-ins in the window", "r_server_faults_p99"),
            ),
            "OS paging counters and the server's page-ins per run vs TTFT p99 (runs of H2)",
        )
    },
    "H4": {
        "p99_vs_qos": Scatter(
            "fig_qos_paging.csv",
            "x",
            "storage QoS profile",
            (
                Panel(TTFT.ys, TTFT.label, "p99_ratio_worst_qos"),
                Panel(("read_await_ms",), "device read await (ms)", "read_await_ratio_worst_qos"),
            ),
            "TTFT p50/p99 and read await per run vs storage QoS under paging (stack P)",
            ticks=((0.0, "none"), (1.0, "moderate"), (2.0, "heavy")),
        )
    },
    "H5": {
        "p99_vs_adapters": Scatter(
            "fig_lora_working_set.csv",
            "adapters",
            "LoRA adapters in the mix (working set)",
            (
                Panel(TTFT.ys, TTFT.label, "slope_p99_vs_adapters"),
                Panel(("read_iops",), "device reads (IOPS)", "slope_iops_vs_adapters"),
            ),
            "TTFT p50/p99 and device reads per run vs LoRA working set (stack A)",
            log2=True,
        )
    },
    "H6": {
        "p99_storm_vs_baseline": Scatter(
            "fig_lora_storm.csv",
            "adapters",
            "LoRA adapters in the mix (1: baseline, 64: storm)",
            (
                Panel(TTFT.ys, TTFT.label, "p99_ratio_storm"),
                Panel(("lora_loads",), "adapter loads in the window"),
            ),
            "TTFT p50/p99 and adapter loads per run, baseline vs LoRA storm (stack A)",
            log2=True,
        )
    },
    "H7": {
        "device_vs_lora_bytes": Scatter(
            "fig_device_vs_lora.csv",
            "lora_read_bytes",
            "bytes the server read loading adapters",
            (Panel(("read_bytes",), "device read bytes (diskstats)", "r_device_vs_lora_bytes"),),
            "Device read bytes per run vs adapter bytes loaded (runs of H5 and H6)",
        )
    },
    "H8": {
        "iowait_vs_p99": Scatter(
            "fig_iowait_vs_p99.csv",
            "ttft_p99",
            "TTFT p99 per run (ms)",
            (
                Panel(("iowait_pct",), "CPU iowait (%)", "r_iowait_p99"),
                Panel(("read_await_ms",), "device read await (ms)", "r_read_await_p99"),
            ),
            "CPU iowait and read await per run vs TTFT p99 (runs of H2 and H4)",
        )
    },
}


def _scatter(hyp: str, name: str) -> Callable[[Summary], Drawn]:
    return partial(draw_scatter, SCATTERS[hyp][name])


# one name per figure, so the registry (spark_harness.legacy.HYPOTHESES) can refer to it
p99_vs_pressure = _scatter("H2", "p99_vs_pressure")
p99_vs_os_paging = _scatter("H3", "p99_vs_os_paging")
p99_vs_qos = _scatter("H4", "p99_vs_qos")
p99_vs_adapters = _scatter("H5", "p99_vs_adapters")
p99_storm_vs_baseline = _scatter("H6", "p99_storm_vs_baseline")
device_vs_lora_bytes = _scatter("H7", "device_vs_lora_bytes")
iowait_vs_p99 = _scatter("H8", "iowait_vs_p99")
