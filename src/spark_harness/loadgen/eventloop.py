"""The load generator's event loop: woken at most once per poll gap while it is busy,
and not held up by a garbage collection of what the process held before the load.

A streaming server writes each event apart, and a client faster than the server is woken
and reads once per write: one ``epoll`` and one ``recv`` per token. Against a zero-delay
server writing every event apart (64 streams, the benchmark's capacity table) the load
generator's loop spent 10.0 CPU-ms per 1,000 tokens so (a bare asyncio client 7.0);
with a poll gap of 250 µs, 2.5 (the bare client 1.3), and the server, no longer waking
a reader per write, streamed 10 % more (benchmarks/README.md, "The poll gap").

The gap costs no accuracy where the stamps are the kernel's (:mod:`.kstamp`, plain HTTP
on Linux): a read's stamp is the arrival of its last segment, however late the read. It
only makes reads hold more: a read that holds a stream's first token and a later one
carries a bound (``first_token_bound_ms``), which happens only where a server writes
events less than a gap apart. The loop never sleeps past a timer (an open loop's next
send keeps its time) nor while callbacks are ready; it sleeps only the rest of a gap
begun by its last wake, so an arrival after a quiet spell is read at once. Where reads
keep the loop's own time (TLS, another platform), the gap would add to every stamp, so
the loop is asyncio's own.
"""

from __future__ import annotations

import asyncio
import gc
import selectors
import time
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

from spark_harness.loadgen import kstamp

#: the shortest time between two of the loop's wakes while it is busy: against a
#: per-event server the bare client spent 7.0 CPU-ms per 1,000 tokens without it, 1.5 at
#: 250 µs, 1.3 at 500 µs and 1.1 at 2 ms: most of the gain is in the first 250 µs, and the
#: shorter the gap, the fewer reads merge a fast server's events
POLL_GAP_NS = 250_000

T = TypeVar("T")


class GappedSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's selector, waiting out the rest of ``gap_ns`` since its last wake
    before it polls (never past the timeout it was given)."""

    def __init__(self, gap_ns: int) -> None:
        super().__init__()
        self.gap_ns = gap_ns
        self._woke_ns = 0

    def select(self, timeout: float | None = None) -> list[Any]:
        rest_s = (self._woke_ns + self.gap_ns - time.monotonic_ns()) / 1e9
        if rest_s > 0 and (timeout is None or timeout > 0):
            pause = rest_s if timeout is None else min(rest_s, timeout)
            time.sleep(pause)
            if timeout is not None:
                timeout = max(0.0, timeout - pause)
        events = super().select(timeout)
        self._woke_ns = time.monotonic_ns()
        return events


def gap_for(base_url: str, gap_ns: int = POLL_GAP_NS) -> int:
    """The poll gap for a load against ``base_url``: ``gap_ns`` where reads carry the
    kernel's stamps (plain HTTP on Linux), else 0."""
    return gap_ns if kstamp.KERNEL_STAMPS and urlsplit(base_url).scheme == "http" else 0


def run(coro: Coroutine[Any, Any, T], gap_ns: int) -> T:
    """``asyncio.run(coro)`` on a loop with a poll gap of ``gap_ns`` (0: asyncio's own),
    with what the process held before it frozen out of garbage collection while it runs.

    A full collection traverses every object of the process and holds the loop that long:
    about 2 ms for a point's process (26,000 objects), 54 ms for a test process that has
    run two test directories (123,000), longer for a larger one; with the older objects
    frozen, only those the load made are traversed (0.0 ms at the start). They are thawed
    afterwards, so a process that runs many loads still collects their garbage.
    """
    freeze = gc.get_freeze_count() == 0  # a caller's freeze is the caller's to undo
    if freeze:
        gc.freeze()
    gapped = lambda: asyncio.SelectorEventLoop(GappedSelector(gap_ns))  # noqa: E731
    try:
        with asyncio.Runner(loop_factory=gapped if gap_ns > 0 else None) as runner:
            return runner.run(coro)
    finally:
        if freeze:
            gc.unfreeze()
