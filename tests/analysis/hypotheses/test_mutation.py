"""Mutation check: every evaluator tells a world where its hypothesis holds from one where
it does not, so no constant evaluator could pass these tests.

For every hypothesis: a planted world where it holds must give exactly ``supported``, and
one where it does not exactly ``not supported``. The same assertions then run on the
three constant evaluators (always supported, always not supported, always
inconclusive): each must fail them, which shows the assertions can fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spark_harness.analysis.evidence import Context, verdict
from spark_harness.analysis.hypotheses import h0, h1, h2, h3, h4, h5, h6, h7, h8, h9
from spark_harness.analysis.runs import load
from spark_harness.analysis.verdict import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    Criterion,
    Verdict,
)
from spark_harness.plan import Plan
from spark_harness_testkit.synthetic import World
from tests.analysis.conftest import synthesize
from tests.plans import make_plan

Evaluator = Callable[[Context], Verdict]

EVALUATORS: dict[str, Evaluator] = {
    "H0": h0.evaluate,
    "H1": h1.evaluate,
    "H2A": h2.evaluate_a,
    "H2B": h2.evaluate_b,
    "H3": h3.evaluate,
    "H4A": h4.evaluate_a,
    "H4B": h4.evaluate_b,
    "H5": h5.evaluate,
    "H6": h6.evaluate,
    "H7": h7.evaluate,
    "H8A": h8.evaluate_a,
    "H8B": h8.evaluate_b,
    "H9": h9.evaluate,
}

#: Worlds where the hypothesis does not hold (the default World is where every one holds).
DOES_NOT_HOLD: dict[str, World] = {
    "H0": World(b_overhead=0.15),  # Dynamo adds 15 % to p50: no parity
    "H1": World(cold_tail=1.0, cold_read_bytes=0.0),  # cold adapters read nothing more
    "H2A": World(a_read_kbps=4000.0),  # A reads from NVMe in its window
    "H2B": World(storage_knee_ctx=10**6),  # G3 engaged, but never half of TTFT
    "H3": World(os_sees_a=0.0),  # A's pool took its memory at start-up: OS memory flat
    "H4A": World(a_qos_slope=8.0),  # A's TTFT follows read await
    "H4B": World(qos_slope=0.0),  # B's TTFT ignores read await
    "H5": World(sessions_knee=10**4),  # the working set barely reaches G3
    "H6": World(capacity_exponent=0.0),  # neither capacity nor policy moves p99
    "H7": World(device_read_factor=3.0),  # the server reads 3 x the predicted bytes
    "H8A": World(iowait_a_per_ms=0.1),  # A's iowait follows its TTFT
    "H8B": World(iowait_per_share=0.0),  # iowait flat while NVMe is engaged
    "H9": World(disk_reload_factor=2.0),  # G3 slower than recomputing
}
TRUTH = {"holds": SUPPORTED, "does not hold": NOT_SUPPORTED}
REPETITIONS = 3
#: H8B's correlations are given the source (Fisher-z half-width 1.96 / sqrt(n - 4)), and
#: its read await, which barely moves with H2B's context while p99 quadruples, has r ~0.3
CORRELATION_REPETITIONS = 10


def constant(status: str) -> Evaluator:
    """An evaluator that ignores the evidence and always says ``status``."""

    def evaluate(ctx: Context) -> Verdict:
        c = Criterion("constant", "none", 0.0, (0.0, 0.0), 0.0, ">", "test", status)
        return verdict(ctx, [c], [], ctx.data.runs)

    return evaluate


def plan_for(hyp: str) -> Plan:
    """``hyp`` with its sources (and H0 where U_work is needed), as the analysis tests run."""
    base = make_plan(repetitions=REPETITIONS)
    wanted = {
        hyp: {},
        **{s: {} for s in base.hypotheses[hyp].get("analytical", {}).get("from", [])},
    }
    if any(base.hypotheses[h].get("load", {}).get("users") == "u_work" for h in wanted):
        wanted["H0"] = {}
    return make_plan(wanted, CORRELATION_REPETITIONS if hyp == "H8B" else REPETITIONS)


def wrong(contexts: dict[str, Context], evaluate: Evaluator) -> list[str]:
    """Where ``evaluate``'s verdict differs from the planted truth (empty: right in both)."""
    out = []
    for truth, ctx in contexts.items():
        got = evaluate(ctx).status
        if got != TRUTH[truth]:
            out.append(f"{truth}: {got}")
    return out


@pytest.mark.parametrize("hyp", list(EVALUATORS))
def test_evaluator_is_right_in_both_worlds_and_no_constant_is(hyp: str, tmp_path: Path) -> None:
    plan = plan_for(hyp)
    contexts = {}
    for truth, world in (("holds", World()), ("does not hold", DOES_NOT_HOLD[hyp])):
        ingested = synthesize(tmp_path / truth, plan, world, set(plan.hypotheses))
        sources = {k: ingested[k] for k in plan.sources_of(hyp)}
        contexts[truth] = Context(hyp, plan.hypotheses[hyp], load(sources), tmp_path / "out")
    assert wrong(contexts, EVALUATORS[hyp]) == []
    for status in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE):
        assert wrong(contexts, constant(status)), f"constant {status!r} passed for {hyp}"
