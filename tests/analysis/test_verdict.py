"""The three-way decision, status precedence and the JSON form of a verdict."""

import json
import math

from spark_harness.analysis.verdict import (
    INCONCLUSIVE,
    INF,
    INVALID,
    NOT_SUPPORTED,
    SUPPORTED,
    Criterion,
    Gate,
    Verdict,
    judge,
)

ABOVE_ZERO = {"supported": [(0, INF)], "refuted": [(-INF, 0)]}


def test_judge_regions():
    assert judge(1.0, (0.5, 1.5), **ABOVE_ZERO) == (SUPPORTED, [])
    assert judge(-1.0, (-1.5, -0.5), **ABOVE_ZERO) == (NOT_SUPPORTED, [])
    assert judge(0.1, (-0.5, 0.7), **ABOVE_ZERO) == (INCONCLUSIVE, ["ci_spans_threshold"])
    assert judge(None, None, **ABOVE_ZERO) == (INCONCLUSIVE, ["missing_evidence"])
    assert judge(math.nan, (0.0, 1.0), **ABOVE_ZERO) == (INCONCLUSIVE, ["missing_evidence"])
    assert judge(1.0, None, **ABOVE_ZERO) == (INCONCLUSIVE, ["no_ci"])


def test_a_ci_on_the_threshold_goes_against_the_claim():
    assert judge(0.0, (0.0, 0.0), **ABOVE_ZERO)[0] == NOT_SUPPORTED
    assert judge(0.1, (0.0, 0.2), **ABOVE_ZERO)[0] == INCONCLUSIVE


def _criterion(status: str, role: str = "rule") -> Criterion:
    return Criterion("c", "s", 1.0, (0.0, 2.0), 0.0, ">", "src", status, [f"r_{status}"], role=role)


def _verdict(criteria, gates=(), used=True) -> Verdict:
    runs = [{"run_id": "x", "used": used, "outcome": "ok"}]
    return Verdict("H", "t", list(criteria), list(gates), runs=runs)


def test_status_precedence():
    ok = _criterion(SUPPORTED)
    assert _verdict([ok]).status == SUPPORTED
    assert _verdict([ok, _criterion(INCONCLUSIVE)]).status == INCONCLUSIVE
    assert _verdict([_criterion(NOT_SUPPORTED), _criterion(INCONCLUSIVE)]).status == NOT_SUPPORTED
    assert _verdict([ok, _criterion(NOT_SUPPORTED, "info")]).status == SUPPORTED
    cov = Gate("cov_p99", False, INCONCLUSIVE, reasons=["cov_p99_over_10pct"])
    mech = Gate("mechanism", False, INVALID, reasons=["no_g3_onboards"])
    assert _verdict([_criterion(NOT_SUPPORTED)], [cov]).status == INCONCLUSIVE
    assert _verdict([ok], [cov, mech]).status == INVALID
    assert _verdict([ok], used=False).status == INVALID
    assert _verdict([]).status == INCONCLUSIVE


def test_any_role_needs_one_alternative():
    alt = lambda s: _criterion(s, "any")  # noqa: E731
    assert _verdict([alt(SUPPORTED), alt(NOT_SUPPORTED)]).status == SUPPORTED
    assert _verdict([alt(NOT_SUPPORTED), alt(NOT_SUPPORTED)]).status == NOT_SUPPORTED
    assert _verdict([alt(INCONCLUSIVE), alt(NOT_SUPPORTED)]).status == INCONCLUSIVE


def test_reasons_and_json(tmp_path):
    report = Gate("failed_runs", False, "report", reasons=["failed_runs_excluded"])
    v = _verdict([_criterion(INCONCLUSIVE), _criterion(INCONCLUSIVE, "info")], [report])
    v.criteria[0].value = math.nan
    v.write(tmp_path / "v.json")
    d = json.loads((tmp_path / "v.json").read_text())
    assert d["status"] == INCONCLUSIVE
    assert d["reasons"] == ["failed_runs_excluded", "r_inconclusive"]
    assert d["statistic"]["value"] is None  # NaN is written as null
    assert d["threshold"] == {"op": ">", "value": 0.0, "source": "src"}
    assert d["gates"]["failed_runs"]["effect"] == "report"
    assert d["bootstrap"]["seed"] == 20261126


def test_the_statistic_shown_is_the_criterion_that_decides(tmp_path):
    """A verdict not supported names its refuted criterion (H0 in the oracle world where
    B's p50 parity fails showed knee_A, a supported one, before)."""

    def named(name: str, status: str) -> Criterion:
        c = _criterion(status)
        c.name, c.reasons = name, [f"r:{name}"]
        return c

    knee, undecided, parity = (
        named("knee_A", SUPPORTED),
        named("knee_B", INCONCLUSIVE),
        named("parity", NOT_SUPPORTED),
    )
    assert _verdict([knee, undecided, parity]).primary().name == "parity"
    assert _verdict([knee, undecided]).primary().name == "knee_B"
    assert _verdict([knee]).primary().name == "knee_A"
    v = _verdict([knee, undecided, parity])
    v.write(tmp_path / "v.json")
    assert json.loads((tmp_path / "v.json").read_text())["statistic"]["name"] == "parity"
    alternatives = [named("capacity", SUPPORTED), named("policy", INCONCLUSIVE)]
    for c in alternatives:
        c.role = "any"
    cov = Gate("cov_p99", False, INCONCLUSIVE, reasons=["cov_p99_over_10pct"])
    assert _verdict(alternatives, [cov]).primary().name == "capacity"
    assert "r:policy" not in _verdict(alternatives, [cov]).reasons  # it decides nothing
