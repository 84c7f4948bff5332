"""The verdict of one hypothesis: criteria, gates, status and the rows behind them.

Status precedence (docs/ANALYSIS.md):

1. **invalid**: a gate whose effect is ``invalid`` failed (telemetry alignment, mechanism:
   no offloads/onboards where the claim needs them, a perturbation that did not bite), or
   there is no usable run at all;
2. **inconclusive**: a gate whose effect is ``inconclusive`` failed (too few repetitions,
   CoV of p99 >= 10 %), or no rule criterion was refuted but one could not be decided
   (its CI spans the threshold, or its evidence is missing);
3. **not supported**: some rule criterion was refuted (its CI lies on the wrong side);
4. **supported**: every rule criterion's CI lies on the claim's side of its threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spark_harness.analysis.stats import CI_LEVEL, RESAMPLES, SEED
from spark_harness.files import write_json
from spark_harness.verdict_contract import (
    CI_SPANS_THRESHOLD,
    INCONCLUSIVE,
    INVALID,
    MISSING_EVIDENCE,
    NO_CI,
    NO_USABLE_RUNS,
    NOT_SUPPORTED,
    SCHEMA_VERSION,
    SUPPORTED,
    validate,
)

#: the statuses are re-exported: the evaluators import them from here
__all__ = [
    "INCONCLUSIVE",
    "INF",
    "INVALID",
    "NOT_SUPPORTED",
    "SUPPORTED",
    "Criterion",
    "Gate",
    "Interval",
    "Row",
    "Verdict",
    "judge",
]

INF = math.inf
Interval = tuple[float, float]
#: A row of the ingested tables: [hypothesis, stack, point, rep].
Row = list[Any]


def judge(
    value: float | None,
    ci: Interval | None,
    supported: Sequence[Interval],
    refuted: Sequence[Interval],
) -> tuple[str, list[str]]:
    """Three-way decision: the CI lies inside a supporting or a refuting region, or neither.

    A supporting region must contain the CI strictly (a CI touching the threshold does
    not support the claim); a refuting region may share its bound with the CI, so a
    degenerate CI sitting exactly on the threshold (e.g. zero extra bytes) refutes.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return INCONCLUSIVE, [MISSING_EVIDENCE]
    if ci is None:
        return INCONCLUSIVE, [NO_CI]
    lo, hi = ci
    if any(a < lo and hi < b for a, b in supported):
        return SUPPORTED, []
    if any(a <= lo and hi <= b for a, b in refuted):
        return NOT_SUPPORTED, []
    return INCONCLUSIVE, [CI_SPANS_THRESHOLD]


@dataclass
class Criterion:
    """One decidable part of a hypothesis's rule, with its statistic and evidence rows."""

    name: str
    statistic: str
    value: float | None
    ci: Interval | None
    threshold: float | None
    op: str
    source: str
    status: str
    reasons: list[str] = field(default_factory=list)
    unit: str = ""
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    #: ``rule`` criteria must all hold; of the ``any`` criteria (alternatives of one claim,
    #: H6) one must hold; ``info`` ones are reported evidence only.
    role: str = "rule"

    @classmethod
    def judged(
        cls,
        name: str,
        statistic: str,
        value: float | None,
        ci: Interval | None,
        *,
        threshold: float | None,
        op: str,
        source: str,
        supported: Sequence[Interval],
        refuted: Sequence[Interval],
        **kw: Any,
    ) -> Criterion:
        """A criterion decided by :func:`judge` from its CI and regions."""
        status, reasons = judge(value, ci, supported, refuted)
        return cls(
            name=name,
            statistic=statistic,
            value=value,
            ci=ci,
            threshold=threshold,
            op=op,
            source=source,
            status=status,
            reasons=[f"{r}:{name}" for r in reasons],
            **kw,
        )

    @classmethod
    def positive(
        cls,
        name: str,
        statistic: str,
        value: float | None,
        ci: Interval | None,
        *,
        source: str,
        **kw: Any,
    ) -> Criterion:
        """The statistic is above zero: supported when its CI lies above, refuted below."""
        return cls.judged(
            name,
            statistic,
            value,
            ci,
            threshold=0.0,
            op=">",
            source=source,
            supported=[(0, INF)],
            refuted=[(-INF, 0)],
            **kw,
        )

    @classmethod
    def missing(
        cls,
        name: str,
        statistic: str,
        source: str,
        reason: str,
        *,
        threshold: float | None = None,
        op: str = "",
        **kw: Any,
    ) -> Criterion:
        """A criterion whose evidence was not recorded: inconclusive, with the reason."""
        return cls(
            name=name,
            statistic=statistic,
            value=None,
            ci=None,
            threshold=threshold,
            op=op,
            source=source,
            status=INCONCLUSIVE,
            reasons=[reason],
            **kw,
        )


@dataclass
class Gate:
    """A quality or mechanism gate; ``effect`` is the status it forces when it fails."""

    name: str
    passed: bool | None  # None: not applicable to this hypothesis
    effect: str  # invalid | inconclusive | report
    value: float | None = None
    threshold: float | None = None
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """Everything ``verdict.json`` says about one hypothesis."""

    hypothesis: str
    title: str
    criteria: list[Criterion]
    gates: list[Gate]
    stacks: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        failed = [g for g in self.gates if g.passed is False]
        if any(g.effect == INVALID for g in failed) or not self.runs_used():
            return INVALID
        if any(g.effect == INCONCLUSIVE for g in failed):
            return INCONCLUSIVE
        rule = [c.status for c in self.criteria if c.role == "rule"]
        alternatives = [c.status for c in self.criteria if c.role == "any"]
        if alternatives:
            rule.append(_any_of(alternatives))
        if not rule:
            return INCONCLUSIVE
        if NOT_SUPPORTED in rule:
            return NOT_SUPPORTED
        return SUPPORTED if all(s == SUPPORTED for s in rule) else INCONCLUSIVE

    def runs_used(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r.get("used")]

    @property
    def reasons(self) -> list[str]:
        out: list[str] = []
        if not self.runs_used():
            out.append(NO_USABLE_RUNS)
        for g in self.gates:
            if g.passed is False or g.effect == "report":
                out += g.reasons
        for c in self._deciding():
            if c.status != SUPPORTED:
                out += c.reasons
        return list(dict.fromkeys(out))

    def _deciding(self) -> list[Criterion]:
        """The criteria that bear on the status: not ``info``, and of the ``any``
        alternatives only the supported ones once one of them holds."""
        deciding = [c for c in self.criteria if c.role != "info"]
        if any(c.role == "any" and c.status == SUPPORTED for c in deciding):
            deciding = [c for c in deciding if c.role != "any" or c.status == SUPPORTED]
        return deciding

    def primary(self) -> Criterion | None:
        """The criterion that decides the status: the first refuted one of a verdict not
        supported, the first undecided one of an inconclusive verdict, else the first."""
        deciding = self._deciding()
        if self.status in (NOT_SUPPORTED, INCONCLUSIVE):
            picked = next((c for c in deciding if c.status == self.status), None)
            if picked is not None:
                return picked
        return next(iter(deciding), None)

    def to_dict(self) -> dict[str, Any]:
        p = self.primary()
        return _clean(
            {
                "schema_version": SCHEMA_VERSION,
                "hypothesis": self.hypothesis,
                "title": self.title,
                "status": self.status,
                "statistic": None
                if p is None
                else {"name": p.name, "description": p.statistic, "value": p.value, "unit": p.unit},
                "threshold": None
                if p is None
                else {"op": p.op, "value": p.threshold, "source": p.source},
                "ci": None if p is None or p.ci is None else list(p.ci),
                "ci_level": CI_LEVEL,
                "reasons": self.reasons,
                "criteria": [asdict(c) for c in self.criteria],
                "gates": {g.name: asdict(g) for g in self.gates},
                "stacks": self.stacks,
                "runs": self.runs,
                "failed_runs": [r for r in self.runs if r.get("excluded_at_ingest")],
                "tables": self.tables,
                "sources": self.sources,
                "bootstrap": {
                    "resamples": RESAMPLES,
                    "seed": SEED,
                    "unit": "the repetition: t replicates per point, runs redrawn within points",
                },
                "notes": self.notes,
            }
        )

    def write(self, path: Path) -> None:
        """Write ``verdict.json``; a verdict outside the contract is never written."""
        write_json(path, validate(self.to_dict(), f"{path} ({self.hypothesis})"))


def _any_of(statuses: Sequence[str]) -> str:
    """One alternative supported suffices; all refuted refutes; else undecided."""
    if SUPPORTED in statuses:
        return SUPPORTED
    return NOT_SUPPORTED if all(s == NOT_SUPPORTED for s in statuses) else INCONCLUSIVE


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become null, tuples lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj
