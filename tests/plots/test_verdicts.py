"""Verdict wording: numbers with units, the title line, the RST the captions include."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from docutils.core import publish_parts

from spark_harness.plots.verdicts import Verdict, fmt, fmt_ci
from spark_harness.verdict_contract import SCHEMA_VERSION, ContractError

CRITERION = {
    "name": "slope_p99_vs_read_await_ms",
    "statistic": "OLS slope of p99 on read_await_ms over runs",
    "value": 11.288,
    "ci": [8.509, 14.396],
    "threshold": 0.0,
    "op": ">",
    "status": "supported",
    "reasons": [],
    "unit": "ms/ms",
    "role": "rule",
}


def verdict(**over) -> dict:
    base = {
        "schema_version": SCHEMA_VERSION,
        "hypothesis": "H4B",
        "title": "Degraded NVMe QoS raises Stack B's TTFT p99 roughly in proportion",
        "status": "supported",
        "criteria": [CRITERION],
        "gates": {"alignment": {"name": "alignment", "passed": True, "effect": "invalid"}},
        "reasons": [],
        "tables": ["fig_p99_vs_read_await.csv"],
    }
    return {**base, **over}


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.4224, "share", "42.2 %"),
        (2.8495, "ratio", "2.85"),
        (62.14, "ms", "62.1 ms"),
        (-62.14, "ms", "-62.1 ms"),
        (49_934_628.0, "bytes", "47.6 MiB"),
        (9.2e9, "bytes", "8.57 GiB"),
        (2.7013e-06, "ms/bytes", "2.83 ms/MiB"),
        (0.0, "ms", "0 ms"),
        (1234.5, "blocks", "1,234 blocks"),
        (None, "ms", "n/a"),
        (float("nan"), "ms", "n/a"),
    ],
)
def test_numbers_are_rounded_with_readable_units(value, unit, text):
    assert fmt(value, unit) == text


def test_ci_states_a_shared_unit_once():
    assert fmt_ci([8.509, 14.396], "ms/ms") == "95 % CI 8.51 to 14.4 ms/ms"
    assert fmt_ci([0.3803, 0.4355], "share") == "95 % CI 38.0 to 43.5 %"
    assert fmt_ci(None) == "no CI"


def test_headline_states_status_statistic_ci_and_threshold():
    v = Verdict.from_dict(verdict())
    assert v.headline() == (
        "Verdict: supported: slope_p99_vs_read_await_ms = 11.3 ms/ms "
        "(95 % CI 8.51 to 14.4 ms/ms), needs > 0 ms/ms"
    )
    title = v.figure_title("what the figure shows")
    assert title.splitlines()[0].startswith("H4B: Degraded NVMe QoS")
    assert title.splitlines()[1] == "what the figure shows"


def test_invalid_headline_gives_the_reasons_not_a_statistic():
    v = Verdict.from_dict(verdict(status="invalid", reasons=["no_g3_onboards", "x"]))
    assert v.headline() == "Verdict: invalid (no_g3_onboards, x)"


def test_band_criterion_states_both_bounds():
    band = {**CRITERION, "op": "within", "threshold": 0.5, "unit": "ratio"}
    band["details"] = {"band": [0.5, 2.0]}
    assert Verdict.measured(band).endswith("needs within 0.500 to 2.00")


def test_rst_lists_every_criterion_gate_and_reason_and_renders_cleanly():
    v = Verdict.from_dict(
        verdict(
            status="inconclusive",
            criteria=[
                {**CRITERION, "statistic": "max |p50_B/p50_A - 1| *below* the knee"},
                {
                    **CRITERION,
                    "name": "info_one",
                    "role": "info",
                    "status": "inconclusive",
                    "reasons": ["ci_spans_threshold:info_one"],
                },
            ],
            gates={
                "cov_p99": {
                    "name": "cov_p99",
                    "passed": False,
                    "effect": "inconclusive",
                    "reasons": ["cov_p99_over_10pct"],
                }
            },
            reasons=["cov_p99_over_10pct"],
            notes=["no load axis: knee shift judged by p99 at the fixed load"],
        )
    )
    rst = v.rst()
    html = publish_parts(rst, writer="html")["body"]
    assert "system-message" not in html and "problematic" not in html
    assert "Verdict: inconclusive." in html
    assert "slope_p99_vs_read_await_ms" in html and "11.3 ms/ms" in html
    assert "|p50_B/p50_A - 1| *below* the knee" in html  # markup characters kept literal
    assert "(evidence only)" in html and "ci_spans_threshold:info_one" in html
    assert "cov_p99_over_10pct" in html and "Failed quality gates" in html
    assert "no load axis" in html


def test_labels_carry_the_verdict():
    labels = Verdict.from_dict(verdict()).labels("p99_vs_read_await")
    assert labels["verdict"] == "supported"
    assert labels["figure"] == "p99_vs_read_await"
    assert labels["statistic"].startswith("slope_p99_vs_read_await_ms = 11.3 ms/ms")
    assert all(isinstance(v, str) for v in labels.values())  # what Snakemake accepts


def test_bad_verdict_files_name_the_file(tmp_path: Path):
    path = tmp_path / "verdict.json"
    with pytest.raises(ContractError, match="verdict missing"):
        Verdict.read(path)
    path.write_text("{not json")
    with pytest.raises(ContractError, match="not valid JSON"):
        Verdict.read(path)
    path.write_text(json.dumps(verdict(status="maybe")))
    with pytest.raises(ContractError, match=rf"{path}: not a verdict.json: status: 'maybe'"):
        Verdict.read(path)
    path.write_text(json.dumps(verdict(schema_version=0)))
    with pytest.raises(ContractError, match="schema_version 0, this harness reads 1"):
        Verdict.read(path)
