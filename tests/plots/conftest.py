"""Fixtures of the figure tests: summaries with planted effects (:mod:`.synth`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spark_harness_testkit.synthetic import World
from tests.plans import make_plan
from tests.plots.synth import Results


@pytest.fixture(scope="session")
def default_results(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """The whole default plan with the default World (every hypothesis holds)."""
    return Results(tmp_path_factory.mktemp("default"), make_plan(), World())


@pytest.fixture
def results_of(tmp_path: Path) -> Callable[..., Results]:
    """results_of({hyp: entry overrides}, world) -> Results of only those hypotheses
    (analytical ones need their sources listed too)."""
    counter = iter(range(100))

    def make(hyps: dict[str, dict[str, Any]], world: World | None = None) -> Results:
        return Results(tmp_path / f"r{next(counter)}", make_plan(hyps), world or World())

    return make
