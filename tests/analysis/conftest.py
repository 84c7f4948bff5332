"""Helpers for the analysis tests: plans over the repository's stacks, synthetic runs
with planted effects, ingest and evaluation in a temporary results folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spark_harness.analysis import summarize
from spark_harness.analysis.thresholds import MIN_REPETITIONS
from spark_harness.ingest import ingest
from spark_harness.plan import Plan, load_config
from spark_harness_testkit.synthetic import World, write_plan
from tests.plans import make_plan

REPO = Path(__file__).resolve().parents[2]


def synthesize(tmp: Path, plan: Plan, world: World, hyps: set[str]) -> dict[tuple[str, str], Path]:
    """Write and ingest the runs of ``hyps``; return the ingest dir per (hyp, stack)."""
    dirs = write_plan(plan, tmp / "results", world, hyps)
    out = {}
    for (h, s), d in dirs.items():
        out[(h, s)] = tmp / "ingest" / h / s
        ingest(d, out[(h, s)])
    return out


def evaluate(tmp: Path, plan: Plan, hyp: str, world: World | None = None) -> dict[str, Any]:
    """Synthesise the sources of ``hyp``, summarise it, and return its verdict.json."""
    sources = plan.sources_of(hyp)
    ingested = synthesize(tmp, plan, world or World(), {h for h, _ in sources})
    out = tmp / "summary" / hyp
    summarize(hyp, plan.hypotheses[hyp], {k: ingested[k] for k in sources}, out)
    return json.loads((out / "verdict.json").read_text())


def find_criterion(verdict: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in verdict["criteria"] if c["name"] == name)


@pytest.fixture(scope="session")
def plan_of() -> Callable[..., Plan]:
    """plan_of({hyp: entry overrides}, repetitions=2) -> Plan over the repo's stacks."""
    return make_plan


@pytest.fixture(scope="session")
def criterion() -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """criterion(verdict, name) -> that criterion of verdict.json."""
    return find_criterion


@pytest.fixture
def verdict_of(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """verdict_of(hyp, world=World(), repetitions=3, **entry_overrides) -> verdict.json.

    Analytical hypotheses get their sources from the default plan's entries."""
    counter = iter(range(1000))

    def run(
        hyp: str, world: World | None = None, repetitions: int = MIN_REPETITIONS, **over: Any
    ) -> dict:
        cfg = load_config(REPO / "config" / "config.yaml")["hypotheses"]
        wanted = {hyp: over, **{src: {} for src in cfg[hyp].get("analytical", {}).get("from", [])}}
        if any(e.get("load", {}).get("users") == "u_work" for h in wanted for e in [cfg[h]]):
            wanted.setdefault("H0", {})  # the plan requires H0 where U_work is used
        plan = make_plan(wanted, repetitions)
        return evaluate(tmp_path / f"t{next(counter)}", plan, hyp, world)

    return run
