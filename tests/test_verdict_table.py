"""Verdicts at a glance: the table of a results folder, as CSV, Markdown, RST and CLI."""

from __future__ import annotations

import csv
import io
import re

import pytest
from docutils.core import publish_parts

from spark_harness import cli, verdict_table
from spark_harness.analysis.verdict import Criterion, Gate, Verdict


def make_results(root):
    """H2B refuted (with a reason), H0 supported: written in the other order on purpose."""
    knee = Criterion.judged(
        "storage_knee",
        "G3 fetch share of p95 TTFT",
        0.31,
        (0.2, 0.4),
        threshold=0.5,
        op=">=",
        source="plan",
        supported=[(0.5, 9)],
        refuted=[(-9, 0.5)],
        unit="share",
    )
    slope = Criterion.positive("slope", "OLS slope", 4.2, (3.1, 5.3), source="plan", unit="ms")
    cov = Gate("cov_p99", False, "report", reasons=["cov_p99_over_10pct"])
    for hyp, c, gates in (("H2B", knee, [cov]), ("H0", slope, [])):
        v = Verdict(hyp, f"claim | of {hyp}", [c], gates, runs=[{"used": True}])
        v.write(root / "summary" / hyp / "verdict.json")
    return root


def test_rows_come_in_registry_order_with_statistic_ci_threshold_and_reasons(tmp_path):
    rows = verdict_table.collect(make_results(tmp_path))
    assert [(r.hypothesis, r.status) for r in rows] == [
        ("H0", "supported"),
        ("H2B", "not supported"),
    ]
    h2b = rows[1]
    assert h2b.statistic == "storage_knee = 31.0 %"
    assert h2b.ci == "95 % CI 20.0 to 40.0 %"
    assert h2b.threshold == "≥ 50.0 %"
    assert h2b.reasons == "cov_p99_over_10pct"
    parsed = list(csv.DictReader(io.StringIO(verdict_table.to_csv(rows))))
    assert parsed[1]["threshold"] == "≥ 50.0 %" and parsed[0]["title"] == "claim | of H0"
    numbers = {
        k: parsed[1][k] for k in ("value", "unit", "ci_lo", "ci_hi", "op", "threshold_value")
    }
    assert numbers == {
        "value": "0.31",
        "unit": "share",
        "ci_lo": "0.2",
        "ci_hi": "0.4",
        "op": ">=",
        "threshold_value": "0.5",
    }


def test_a_plans_not_applicable_hypotheses_get_rows_with_their_reason():
    rows = verdict_table.not_applicable_rows({"H9": "no tiers", "H2B": "no tiers either"})
    assert [(r.hypothesis, r.status, r.reasons) for r in rows] == [
        ("H2B", "not applicable", "no tiers either"),
        ("H9", "not applicable", "no tiers"),
    ]
    assert rows[1].title.startswith("Re-hydrating")  # the registry's claim
    assert "| H9 | not applicable |  |  |  | no tiers |" in verdict_table.markdown(rows)


def test_markdown_and_the_report_front_page(tmp_path):
    rows = verdict_table.collect(make_results(tmp_path))
    md = verdict_table.markdown(rows).splitlines()
    assert md[0].startswith("| hypothesis | status | deciding statistic | 95 % CI |")
    assert md[2] == "| H0 | supported | slope = 4.20 ms | 95 % CI 3.10 to 5.30 ms | > 0 ms | — |"
    page = verdict_table.front_page(rows, "Title\n=====\n\nIntro text.\n")
    html = publish_parts(page, writer="html")
    assert "Verdicts at a glance" in html["html_body"] and "Intro text." in html["html_body"]
    assert html["title"] == "Title"
    assert page.index("list-table") < page.index("Intro text.")
    # four columns that wrap: statistic, CI and threshold in one cell; long codes breakable
    body = html["html_body"]
    assert "storage_knee = 31.0 % (95 % CI 20.0 to 40.0 %), needs ≥ 50.0 %" in body
    assert "cov_\u200bp99_\u200bover_\u200b10pct" in body
    assert body.count("<th class") == 4


def test_the_cli_prints_the_table_of_any_results_folder(tmp_path, capsys):
    assert cli.main(["verdicts", str(make_results(tmp_path / "r"))]) == 0
    out = capsys.readouterr().out
    assert "| H2B | not supported | storage_knee = 31.0 % |" in out
    assert cli.main(["verdicts", "--csv", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.startswith("hypothesis,title,status,")
    assert cli.main(["verdicts", str(tmp_path / "empty")]) == 1
    assert "no verdicts" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["", "{not json", '{"schema_version": 1}', "\udcff"])
def test_one_unreadable_verdict_file_gets_its_own_row_and_the_others_are_shown(
    tmp_path, capsys, text
):
    root = make_results(tmp_path / "r")
    bad = root / "summary" / "H5" / "verdict.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(text.encode("utf-8", "surrogateescape"))  # the last: not UTF-8
    assert cli.main(["verdicts", str(root)]) == 0
    out = capsys.readouterr().out
    assert "| H2B | not supported |" in out
    assert re.search(r"\| H5 \| unreadable \|.*\S", out), out


def test_the_cli_lists_the_plans_not_applicable_hypotheses_from_the_workflows_table(
    tmp_path, capsys
):
    """Nothing ran for them, so they have no verdict file: the workflow's table has them."""
    root = make_results(tmp_path / "r")
    rows = [
        *verdict_table.collect(root),
        *verdict_table.not_applicable_rows({"H9": "no tiers on this engine"}),
    ]
    verdict_table.write(rows, root / verdict_table.VERDICTS_CSV, root / verdict_table.VERDICTS_MD)
    assert cli.main(["verdicts", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0].lstrip("| ") for line in out[2:]] == ["H0", "H2B", "H9"]
    assert "| H9 | not applicable |  |  |  | no tiers on this engine |" in out
