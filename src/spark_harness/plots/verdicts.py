"""What a figure says about its verdict: the title line, the report caption, the labels.

Every figure states its hypothesis's verdict in its title, and the report's captions
state the verdict with its numbers. Both are written from ``verdict.json`` alone (the
analysis's output, checked against :mod:`spark_harness.verdict_contract`), here, so a
title and a caption never disagree.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spark_harness import verdict_contract as contract
from spark_harness.files import atomic_writer

MIB = 1024**2
GIB = 1024**3
OPS = {">=": "≥", "<=": "≤", "==": "="}


class PlotError(ValueError):
    """The summaries a figure needs are missing or malformed; the message names the file."""


def fmt(value: float | None, unit: str = "") -> str:
    """A number with its unit, rounded for reading (3 significant digits)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    v = float(value)
    if unit == "share":
        return f"{_sig(100 * v)} %"
    if unit == "bytes":
        return f"{_sig(v / GIB)} GiB" if abs(v) >= GIB else f"{_sig(v / MIB)} MiB"
    if unit.endswith("/bytes"):  # per byte is unreadably small: per MiB
        return f"{_sig(v * MIB)} {unit.removesuffix('/bytes')}/MiB"
    return f"{_sig(v)} {unit}".rstrip() if unit not in ("ratio", "r", "R²") else _sig(v)


def _sig(v: float) -> str:
    if v == 0:
        return "0"
    digits = max(0, 2 - math.floor(math.log10(abs(v))))
    return f"{v:,.{min(digits, 6)}f}"


def fmt_ci(ci: list[float] | tuple[float, float] | None, unit: str = "") -> str:
    if not ci or any(c is None for c in ci):
        return "no CI"
    lo, hi = fmt(ci[0], unit), fmt(ci[1], unit)
    lo_num, _, lo_unit = lo.partition(" ")
    if lo_unit and hi.endswith(" " + lo_unit):  # the unit once: "CI 8.5 to 14.4 ms"
        lo = lo_num
    return f"95 % CI {lo} to {hi}"


def threshold_text(c: Mapping[str, Any]) -> str:
    """What the criterion needs, e.g. ``> 2.00`` or ``within 0.500 to 2.00``."""
    op, value, unit = c.get("op", ""), c.get("threshold"), c.get("unit", "")
    band = (c.get("details") or {}).get("band")
    if op == "within" and band:  # a band criterion (H7) keeps its bounds in the details
        return f"within {fmt(band[0], unit)} to {fmt(band[1], unit)}"
    if value is None or not op:
        return ""
    return f"{OPS.get(op, op)} {fmt(value, unit)}"


@dataclass
class Verdict:
    """The parts of ``verdict.json`` a figure and its caption use."""

    hypothesis: str
    title: str
    status: str
    criteria: list[dict[str, Any]] = field(default_factory=list)
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    stacks: dict[str, Any] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    deciding: str | None = None  # verdict.json's statistic: the deciding criterion's name

    @classmethod
    def read(cls, path: Path) -> Verdict:
        """A ``verdict.json``; one outside the contract raises :class:`ContractError`."""
        return cls.from_dict(contract.read(Path(path)), str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "verdict") -> Verdict:
        data = contract.validate(data, where)
        return cls(
            hypothesis=str(data["hypothesis"]),
            title=str(data["title"] or data["hypothesis"]),
            status=str(data["status"]),
            criteria=list(data["criteria"]),
            gates=dict(data.get("gates") or {}),
            reasons=list(data["reasons"]),
            stacks=dict(data.get("stacks") or {}),
            tables=list(data.get("tables") or []),
            notes=list(data.get("notes") or []),
            deciding=(data.get("statistic") or {}).get("name"),
        )

    # ------------------------------------------------------------------ lookups
    def criterion(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.criteria if c.get("name") == name), None)

    def primary(self) -> dict[str, Any] | None:
        """The criterion that decides the status, as verdict.json's ``statistic`` names it
        (older files: the first that is not ``info``)."""
        deciding = [c for c in self.criteria if c.get("role") != "info"]
        return next(
            (c for c in deciding if c.get("name") == self.deciding), next(iter(deciding), None)
        )

    def failed_gates(self) -> list[dict[str, Any]]:
        return [g for g in self.gates.values() if g.get("passed") is False]

    # ---------------------------------------------------------------- wording
    @staticmethod
    def measured(c: Mapping[str, Any]) -> str:
        """``value (95 % CI lo to hi), needs op threshold`` of one criterion."""
        unit = c.get("unit", "")
        text = fmt(c.get("value"), unit)
        if c.get("ci"):
            text += f" ({fmt_ci(c['ci'], unit)})"
        need = threshold_text(c)
        return f"{text}, needs {need}" if need else text

    @classmethod
    def describe(cls, c: Mapping[str, Any]) -> str:
        return f"{c['name']} = {cls.measured(c)}"

    def headline(self) -> str:
        """The verdict line of every figure: status, why (unless supported), the primary
        criterion's numbers."""
        p = self.primary()
        why = ", ".join(self.reasons[:3]) + (", ..." if len(self.reasons) > 3 else "")
        line = f"Verdict: {self.status}"
        if self.status == "invalid" or p is None:
            return f"{line} ({why or 'no criterion'})"
        if self.status != "supported" and why:
            line += f" ({why})"
        return f"{line}: {self.describe(p)}"

    def figure_title(self, what: str) -> str:
        """Title of a figure: the hypothesis and its claim, what is shown, the verdict."""
        claim = textwrap.shorten(self.title, 100, placeholder=" ...")
        return "\n".join([f"{self.hypothesis}: {claim}", what, textwrap.fill(self.headline(), 115)])

    def labels(self, figure: str, stack: str = "all", point: str = "all") -> dict[str, str]:
        """Labels of one figure in the Snakemake report (one row of its results table)."""
        p = self.primary()
        return {
            "figure": figure,
            "stack": stack,
            "point": point,
            "verdict": self.status,
            "statistic": "n/a" if p is None else self.describe(p),
        }

    def rst(self) -> str:
        """The verdict with its numbers as reStructuredText (included by the captions)."""
        out = [f"**Verdict: {self.status}.** {rst_escape(self.title)}.", ""]
        for c in self.criteria:
            role = " (evidence only)" if c.get("role") == "info" else ""
            role = " (one alternative must hold)" if c.get("role") == "any" else role
            out.append(
                f"- ``{c['name']}``{role}: **{c.get('status', '?')}**, "
                f"{rst_escape(self.measured(c))}"
                f" — {rst_escape(c.get('statistic', ''))}"
            )
            if c.get("reasons"):
                out[-1] += f"; reasons: {', '.join(f'``{r}``' for r in c['reasons'])}"
        if self.criteria:
            out.append("")
        failed = self.failed_gates()
        if failed:
            names = ", ".join(
                f"``{g['name']}`` ({g.get('effect')}: {', '.join(g.get('reasons') or [])})"
                for g in failed
            )
            out += [f"Failed quality gates: {names}.", ""]
        else:
            out += ["Every quality gate passed.", ""]
        if self.reasons:
            out += [f"Reason codes: {', '.join(f'``{r}``' for r in self.reasons)}.", ""]
        for n in self.notes:
            out += [f"Note: {rst_escape(n)}.", ""]
        return "\n".join(out)

    def write_rst(self, path: Path) -> None:
        with atomic_writer(path) as fh:
            fh.write(self.rst())


def rst_escape(text: str) -> str:
    """Plain text safe inside RST paragraphs (``*``, backquotes and ``|`` are markup)."""
    for ch in ("\\", "*", "`", "|", "_"):
        text = text.replace(ch, "\\" + ch)
    return text
