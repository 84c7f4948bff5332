"""Figures drawn from the summaries alone (PNG plus the CSV behind each)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl


def figure_names(hyp: str) -> list[str]:
    """The figures a hypothesis produces (file stems under results/figures/{hyp}/)."""
    return ["p99_by_point"]


def draw(hyp: str, figure: str, summary_dir: Path, png: Path, csv: Path) -> None:
    """Draw ``figure`` of ``hyp`` from the files in ``summary_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    verdict = json.loads((summary_dir / "verdict.json").read_text())
    table = pl.read_csv(summary_dir / "summary.csv")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if {"point", "ttft_p99", "stack"} <= set(table.columns):
        for stack in table["stack"].unique().sort():
            sub = table.filter(pl.col("stack") == stack)
            ax.plot(
                sub["point"].to_list(),
                sub["ttft_p99"].to_list(),
                marker="o",
                label=f"stack {stack}",
            )
        ax.set_ylabel("TTFT p99 (ms)")
        ax.legend()
    ax.set_title(f"{hyp}: {verdict.get('status')}")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    table.write_csv(csv)
