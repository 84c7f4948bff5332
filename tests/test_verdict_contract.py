"""The verdict contract: what the analysis writes is what every reader accepts."""

from __future__ import annotations

import json

import pytest

from spark_harness import verdict_contract as contract
from spark_harness.analysis.verdict import Criterion, Gate, Verdict
from spark_harness.verdict_contract import ContractError


def written(tmp_path) -> dict:
    c = Criterion.positive("effect", "mean effect", 2.0, (1.0, 3.0), source="test", unit="ms")
    v = Verdict("H0", "claim", [c], [Gate("alignment", True, "invalid")], runs=[{"used": True}])
    v.write(tmp_path / "verdict.json")
    return json.loads((tmp_path / "verdict.json").read_text())


def test_the_analysis_writes_what_the_contract_reads(tmp_path):
    data = written(tmp_path)
    assert data["schema_version"] == contract.SCHEMA_VERSION
    assert contract.read(tmp_path / "verdict.json")["status"] == contract.SUPPORTED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": 2}, "schema_version 2, this harness reads 1"),
        ({"status": "maybe"}, "status: 'maybe' is not one of"),
        ({"reasons": ["Not A Code"]}, "reasons/0: 'Not A Code' does not match"),
        ({"criteria": [{"name": "x"}]}, "criteria/0: 'statistic' is a required property"),
    ],
)
def test_a_verdict_outside_the_contract_fails_loudly(tmp_path, change, message):
    data = {**written(tmp_path), **change}
    with pytest.raises(ContractError, match=message):
        contract.validate(data, "v.json")


def test_a_verdict_without_a_field_is_refused():
    data = {"schema_version": contract.SCHEMA_VERSION, "hypothesis": "H0", "status": "invalid"}
    with pytest.raises(ContractError, match="'title' is a required property"):
        contract.validate(data)


def test_the_analysis_refuses_to_write_a_verdict_outside_the_contract(tmp_path):
    c = Criterion.missing("effect", "mean effect", "test", "Bad Reason")
    v = Verdict("H0", "claim", [c], [], runs=[{"used": True}])
    with pytest.raises(ContractError, match="does not match"):
        v.write(tmp_path / "verdict.json")
    assert not (tmp_path / "verdict.json").exists()
