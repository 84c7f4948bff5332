"""Progress of a load run: a bar on a terminal, periodic plain lines in logs.

It reads the run's counters on its own timer, so it adds nothing to the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator

from spark_harness.loadgen.phases import Phases

log = logging.getLogger("spark_harness.loadgen")

BAR_REFRESH_S = 0.5
LOG_EVERY_S = 10.0


def status_line(phases: Phases, errors: Counter[str]) -> str:
    """One line: the phase, requests sent/finished/in flight, errors by kind."""
    phase = phases.current or ("done" if phases.finished.is_set() else "draining")
    errs = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "0"
    return (
        f"phase {phase}: sent {sum(phases.sent.values())}, "
        f"finished {sum(phases.done.values())}, in flight {phases.inflight}, errors {errs}"
    )


async def _report(phases: Phases, errors: Counter[str], planned_s: float | None) -> None:
    if sys.stderr.isatty():
        from tqdm import tqdm

        t0 = time.monotonic()
        with tqdm(
            total=planned_s,
            unit="s",
            file=sys.stderr,
            leave=False,
            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s {postfix}",
        ) as bar:
            while True:
                bar.n = round(time.monotonic() - t0, 1)
                bar.set_postfix_str(status_line(phases, errors), refresh=False)
                bar.refresh()
                await asyncio.sleep(BAR_REFRESH_S)
    while True:
        await asyncio.sleep(LOG_EVERY_S)
        log.info("loadgen %s", status_line(phases, errors))


@contextlib.asynccontextmanager
async def progress(
    phases: Phases, errors: Counter[str], planned_s: float | None
) -> AsyncIterator[None]:
    """Report progress while the body runs, then log the final line."""
    task = asyncio.create_task(_report(phases, errors, planned_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("loadgen %s", status_line(phases, errors))
