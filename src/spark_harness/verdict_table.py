"""Verdicts at a glance: every hypothesis of a results folder in one table.

One row per ``summary/{hyp}/verdict.json`` (each checked against the verdict contract):
the hypothesis, its status, the deciding statistic with its CI and threshold, the
reasons. Written as ``summary/verdicts.csv`` and ``summary/verdicts.md`` by the
workflow's ``verdicts`` rule, printed when a run ends, shown by ``spark-harness verdicts
[RESULTS_DIR]`` for any results folder, and the report's front page (:func:`rst`).
"""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from spark_harness import verdict_contract as contract
from spark_harness.files import atomic_writer
from spark_harness.plots.verdicts import Verdict, fmt, fmt_ci, rst_escape, threshold_text
from spark_harness.registry import load

SUMMARY = "summary"
#: The table's status of a hypothesis the plan declares it cannot decide (config
#: ``not_applicable``); no verdict file has it, a table row does.
NOT_APPLICABLE = "not applicable"
#: Where the workflow writes the table, relative to the results folder (as in ``layout``).
VERDICTS_CSV = f"{SUMMARY}/verdicts.csv"
VERDICTS_MD = f"{SUMMARY}/verdicts.md"
#: The report's front page: the table, then the report's introduction.
FRONT_PAGE = f"{SUMMARY}/report.rst"


@dataclass(frozen=True)
class Row:
    """One hypothesis's verdict, as the table shows it."""

    hypothesis: str
    title: str
    status: str
    statistic: str  # the deciding criterion's name and value, with its unit
    ci: str
    threshold: str
    reasons: str
    # the same numbers unrounded, for whoever reads the CSV with code
    value: float | None = None
    unit: str = ""
    ci_lo: float | None = None
    ci_hi: float | None = None
    op: str = ""
    threshold_value: float | None = None

    @classmethod
    def of(cls, v: Verdict) -> Row:
        p = v.primary()
        if p is None:
            return cls(v.hypothesis, v.title, v.status, "", "", "", ", ".join(v.reasons))
        unit = p.get("unit", "")
        lo, hi = p.get("ci") or (None, None)
        return cls(
            hypothesis=v.hypothesis,
            title=v.title,
            status=v.status,
            statistic=f"{p['name']} = {fmt(p.get('value'), unit)}",
            ci=fmt_ci(p.get("ci"), unit),
            threshold=threshold_text(p),
            reasons=", ".join(v.reasons),
            value=p.get("value"),
            unit=unit,
            ci_lo=lo,
            ci_hi=hi,
            op=p.get("op", ""),
            threshold_value=p.get("threshold"),
        )


def _order(hyp: str) -> tuple[int, str]:
    """Registry order (the plan's), then any other id alphabetically."""
    known = list(load())
    return (known.index(hyp), hyp) if hyp in known else (len(known), hyp)


def ordered(rows: Iterable[Row]) -> list[Row]:
    """Rows in the registry's order (the plan's)."""
    return sorted(rows, key=lambda r: _order(r.hypothesis))


def rows_of(verdicts: Iterable[Path]) -> list[Row]:
    """One row per verdict file, in the registry's order."""
    return ordered(Row.of(Verdict.read(Path(f))) for f in verdicts)


def not_applicable_rows(reasons: Mapping[str, str], track: str = "v3") -> list[Row]:
    """A row per hypothesis of the plan's ``not_applicable``: its title and reason."""
    known = load(track)
    return ordered(
        Row(h, known[h].title if h in known else "", NOT_APPLICABLE, "", "", "", why)
        for h, why in reasons.items()
    )


#: the status shown for a verdict file that cannot be read (``spark-harness verdicts``)
UNREADABLE = "unreadable"


def _row_or_unreadable(path: Path) -> Row:
    """A verdict file's row; one that cannot be read (broken, from another version) says
    why in its own row, so the others are still shown."""
    try:
        return Row.of(Verdict.read(path))
    except (ValueError, OSError) as e:  # ContractError, and bytes that are not UTF-8
        return Row(path.parent.name, "", UNREADABLE, "", "", "", str(e).splitlines()[0])


def collect(results: Path) -> list[Row]:
    """The verdict of every hypothesis under ``results`` (none: an empty list), with the
    plan's not-applicable hypotheses as the workflow's table lists them (they have no
    verdict file: nothing ran for them)."""
    files = sorted(Path(results, SUMMARY).glob(f"*/{contract.VERDICT_JSON}"))
    rows = [_row_or_unreadable(f) for f in files]
    return ordered([*rows, *_not_applicable_in_table(Path(results, VERDICTS_CSV))]) if rows else []


def _not_applicable_in_table(path: Path) -> list[Row]:
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return [
            Row(r["hypothesis"], r["title"], NOT_APPLICABLE, "", "", "", r["reasons"])
            for r in csv.DictReader(fh)
            if r.get("status") == NOT_APPLICABLE
        ]


def to_csv(rows: Sequence[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(Row.__dataclass_fields__), lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    return out.getvalue()


HEADER = ("hypothesis", "status", "deciding statistic", "95 % CI", "threshold", "reasons")


def _cells(r: Row) -> tuple[str, ...]:
    return (r.hypothesis, r.status, r.statistic, r.ci, r.threshold, r.reasons or "—")


def markdown(rows: Sequence[Row]) -> str:
    """A GitHub-flavoured Markdown table (``|`` in a cell escaped)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
    return "\n".join(lines) + "\n"


#: The report's column is narrow (the rule graph sits beside it): four columns, the
#: statistic with its CI and threshold in one cell.
RST_HEADER = ("hypothesis", "status", "deciding statistic (95 % CI), threshold", "reasons")
#: Zero-width space: lets a browser wrap a long reason code after ``_`` or ``:``.
_WRAP = "\u200b"


def _rst_cells(r: Row) -> tuple[str, ...]:
    statistic = r.statistic + (f" ({r.ci})" if r.ci else "")
    if r.threshold:
        statistic += f", needs {r.threshold}"
    reasons = r.reasons.replace("_", "_" + _WRAP).replace(":", ":" + _WRAP)
    return (r.hypothesis, r.status, statistic, reasons or "—")


def rst(rows: Sequence[Row]) -> str:
    """The table as an RST ``list-table`` (the report's front page)."""
    out = [
        ".. list-table:: Verdicts at a glance",
        "   :header-rows: 1",
        "   :widths: 10 14 44 32",
        "",
    ]
    for cells in (RST_HEADER, *(_rst_cells(r) for r in rows)):
        out.append("   * - " + _rst_cell(cells[0]))
        out += ["     - " + _rst_cell(c) for c in cells[1:]]
    return "\n".join(out) + "\n"


def _rst_cell(text: str) -> str:
    return rst_escape(text) or "\\ "  # an empty cell must still hold something


def front_page(rows: Sequence[Row], intro: str) -> str:
    """The report's front page: the introduction's title, the verdict table, the rest."""
    lines = intro.splitlines()
    # an RST title is its text and the underline below it
    head, rest = ("\n".join(lines[:2]), "\n".join(lines[2:])) if len(lines) > 1 else ("", intro)
    return f"{head}\n\n{rst(rows)}\n{rest}\n"


def write(rows: Sequence[Row], csv_path: Path, md_path: Path) -> None:
    for path, text in ((csv_path, to_csv(rows)), (md_path, markdown(rows))):
        with atomic_writer(Path(path)) as fh:
            fh.write(text)


def run(args: argparse.Namespace) -> int:
    rows = collect(args.results)
    if not rows:
        print(f"{args.results}: no verdicts under {SUMMARY}/*/{contract.VERDICT_JSON}")
        return 1
    print(to_csv(rows) if args.csv else markdown(rows), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verdicts",
        help="print the verdict of every hypothesis of a results folder",
        description="Verdicts at a glance: status, deciding statistic with CI and threshold,"
        " and reasons of every hypothesis under RESULTS_DIR/summary/.",
    )
    p.add_argument(
        "results",
        nargs="?",
        type=Path,
        default=Path("results"),
        metavar="RESULTS_DIR",
        help="a results folder (default: results)",
    )
    p.add_argument("--csv", action="store_true", help="CSV instead of a Markdown table")
    p.set_defaults(func=run)
