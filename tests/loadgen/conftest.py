"""Helpers for the load generator's tests: run ``run_load`` against a server and collect."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from spark_harness.clock import Clock
from spark_harness.contract import Endpoint
from spark_harness.loadgen import Journal, eventloop, run_load
from spark_harness_testkit.groundtruth import TruthConfig, serve


@dataclass
class Outcome:
    records: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[str, str, int]] = field(default_factory=list)  # on_phase calls
    windows: dict[str, list[int]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # the journal's
    clock: Clock = field(default_factory=Clock.start)

    def phase(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["phase"] == name]

    def mono(self, epoch_ns: int) -> int:
        """A record's epoch timestamp back on this host's monotonic clock."""
        return epoch_ns - self.clock.wall_ns + self.clock.mono_ns


def endpoint(base_url: str, model: str = "truth", kind: str = "sim", **kw: Any) -> Endpoint:
    return Endpoint(stack="test", kind=kind, base_url=base_url, model=model, pid=0, **kw)


def spec(workload: dict[str, Any], load: dict[str, Any], **phases: Any) -> dict[str, Any]:
    """A minimal resolved point spec."""
    ph = {"warmup_s": 0.0, "load_s": 0.3, "cooldown_s": 0.0, "request_timeout_s": 5.0}
    ph.update(phases)
    return {"workload": workload, "load": load, "phases": ph, "seed": 7}


async def run_against(ep: Endpoint, point: dict[str, Any]) -> Outcome:
    """Run a point; its records are read back from its journal (kept if the run fails)."""
    out = Outcome()
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "requests.jsonl")
        try:
            out.windows = await run_load(
                ep, point, out.clock, journal, lambda *a: out.events.append(a)
            )
        finally:
            if journal.path.exists():
                out.records = [json.loads(x) for x in journal.path.read_text().splitlines()]
            out.counts = journal.counts
    return out


def run_as_measured(ep: Endpoint, point: dict[str, Any]) -> Outcome:
    """:func:`run_against` on the event loop a point's load runs on (its poll gap)."""
    return eventloop.run(run_against(ep, point), eventloop.gap_for(ep.base_url))


RunInProcess = Callable[..., Outcome]


@pytest.fixture
def run_in_process() -> RunInProcess:
    """Run a point against an in-process ground-truth server (behaviour, not timing)."""

    def run(point: dict[str, Any], cfg: TruthConfig | None = None, **ep_kw: Any) -> Outcome:
        async def main() -> Outcome:
            async with serve(cfg or TruthConfig(ttft_ms=2, itl_ms=1)) as url:
                return await run_against(endpoint(url, **ep_kw), point)

        return asyncio.run(main())

    return run
