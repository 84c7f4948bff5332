"""Synthetic results folders for the figure and notebook tests: the repository's plan,
synthetic runs with planted effects (``spark_harness_testkit.synthetic``), ingested and summarised
exactly as the workflow does."""

from __future__ import annotations

from pathlib import Path

from spark_harness.analysis import summarize
from spark_harness.ingest import ingest
from spark_harness.plan import Plan
from spark_harness.plots.data import Ingested, Summary
from spark_harness_testkit.synthetic import World, write_plan

REPO = Path(__file__).resolve().parents[2]


class Results:
    """A synthetic results folder: summaries and ingested tables per hypothesis."""

    def __init__(self, root: Path, plan: Plan, world: World) -> None:
        self.root, self.plan = root, plan
        for (h, s), dirs in write_plan(plan, root, world).items():
            ingest(dirs, self.ingest_dir(h, s))
        for hyp in plan.hypotheses:
            sources = {k: self.ingest_dir(*k) for k in plan.sources_of(hyp)}
            summarize(hyp, plan.hypotheses[hyp], sources, self.summary_dir(hyp))

    def ingest_dir(self, hyp: str, stack: str) -> Path:
        return self.root / "ingest" / hyp / stack

    def summary_dir(self, hyp: str) -> Path:
        return self.root / "summary" / hyp

    def summary(self, hyp: str) -> Summary:
        return Summary(self.summary_dir(hyp))

    def ingested(self, hyp: str) -> Ingested:
        return Ingested({s: self.ingest_dir(hyp, s) for s in self.plan.stacks_of(hyp)})

    def points(self, hyp: str) -> list[tuple[str, str]]:
        return list(dict.fromkeys((r.stack, r.point) for r in self.plan.runs(hyp)))
