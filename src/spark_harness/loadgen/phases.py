"""The phases of a load run: which phase a request sent now belongs to, and when each ends.

A phase is a *send* window. It ends

- on time (``duration_s``), but no earlier than ``min_done`` of its requests that warm
  have finished (a warm-up that must touch every LoRA adapter, or answer every
  prompt once);
- on count (``max_requests`` sent);
- when the workload has nothing more to send for it (a trace ends; H9's lists);

and, with ``drain``, only after every request in flight has finished (the last phase of
a run; between H9's phases, so populate is complete before thrash starts). Users keep
sending across undrained boundaries, so the load window starts and ends under load.
A request belongs to the phase it was *sent* in: :meth:`Phases.claim` decides at the
moment of sending, checking the deadline itself rather than trusting a timer's wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from spark_harness.clock import Clock

#: the end of a wait for a send's due time that does not watch for the run to stop
FINAL_SLEEP_S = 0.005
#: the very end of that wait, spent yielding to the event loop instead of sleeping: the
#: loop's timers wake through epoll, whose timeout is in whole milliseconds (rounded up),
#: so a sleep alone is late by up to 1 ms
FINAL_SPIN_S = 0.001


@dataclass(frozen=True)
class PhasePlan:
    name: str
    duration_s: float | None = None  # None: until the workload has nothing more to send
    max_requests: int | None = None
    min_done: int = 0
    drain: bool = False


class Phases:
    """Drives a sequence of :class:`PhasePlan` and reports each start and end."""

    def __init__(
        self,
        plans: list[PhasePlan],
        clock: Clock,
        on_phase: Callable[[str, str, int], None],
    ) -> None:
        if not plans:
            raise ValueError("a run needs at least one phase")
        self._plans = plans
        self._clock = clock
        self._on_phase = on_phase
        self._i = -1
        self._sending = False
        self._draining = False  # stopped sending, waiting for in-flight requests
        self._deadline: int | None = None  # monotonic ns
        self._timer: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        #: phase -> [start_ns, end_ns] (epoch ns)
        self.windows: dict[str, list[int]] = {}
        self.sent: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.warmed: Counter[str] = Counter()  # finished requests that count for min_done
        self.inflight = 0
        #: set once the last phase stops sending; then ``finished`` once it has drained
        self.stopped = asyncio.Event()
        self.finished = asyncio.Event()

    # ------------------------------------------------------------ queries
    @property
    def plan(self) -> PhasePlan:
        return self._plans[self._i]

    @property
    def current(self) -> str | None:
        """The phase a request sent now would belong to; None while not sending."""
        return self.plan.name if self._sending else None

    # ------------------------------------------------------------ events
    def start(self) -> None:
        self._begin(0)

    def claim(self) -> str | None:
        """Count a request being sent now; return its phase (None: do not send)."""
        if self._sending and self._deadline is not None and time.monotonic_ns() >= self._deadline:
            self._time_up()
        if not self._sending:
            return None
        plan = self.plan
        self.sent[plan.name] += 1
        self.inflight += 1
        if plan.max_requests is not None and self.sent[plan.name] >= plan.max_requests:
            self._close()
        return plan.name

    def finish(self, phase: str, warms: bool = True) -> None:
        """A request claimed in ``phase`` has finished (successfully or not); ``warms``:
        it counts toward the phase's ``min_done``."""
        self.inflight -= 1
        self.done[phase] += 1
        self.warmed[phase] += warms
        if self._sending:
            if self._deadline is None or time.monotonic_ns() >= self._deadline:
                self._maybe_close()
        elif self._draining and self.inflight == 0:
            self._draining = False
            self._end()

    def exhausted(self, phase: str) -> None:
        """The workload has nothing more to send in ``phase``."""
        if self._sending and self.plan.name == phase:
            self._close()

    # ------------------------------------------------------------ waiting
    async def wait_sending(self) -> str | None:
        """The phase to send in, waiting through a drain; None once sending is over."""
        while not self._sending:
            if self.stopped.is_set():
                return None
            changed = self._changed
            await changed.wait()
        return self.plan.name

    async def sleep_until(self, mono_ns: int) -> bool:
        """Sleep until ``mono_ns``; False if sending stopped for good meanwhile. The last
        :data:`FINAL_SLEEP_S` are a plain sleep: it wakes in one turn of the event loop,
        a wait that also watches for the stop in three (its timeout cancels a task); the
        last :data:`FINAL_SPIN_S` yield to the loop (its other work goes on) until the
        due time."""
        delay = (mono_ns - time.monotonic_ns()) / 1e9
        if delay > FINAL_SLEEP_S:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), delay - FINAL_SLEEP_S)
            delay = (mono_ns - time.monotonic_ns()) / 1e9
        if delay > FINAL_SPIN_S and not self.stopped.is_set():
            await asyncio.sleep(delay - FINAL_SPIN_S)
        while time.monotonic_ns() < mono_ns and not self.stopped.is_set():
            await asyncio.sleep(0)
        return not self.stopped.is_set()

    # ------------------------------------------------------------ transitions
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _begin(self, i: int) -> None:
        self._i = i
        plan = self.plan
        t = self._clock.now_ns()
        self.windows[plan.name] = [t, t]
        self._on_phase(plan.name, "start", t)
        self._sending = True
        self._deadline = None
        if plan.duration_s is not None:
            self._deadline = time.monotonic_ns() + round(plan.duration_s * 1e9)
            self._timer = asyncio.get_running_loop().call_later(plan.duration_s, self._time_up)
        self._notify()
        if plan.duration_s == 0:
            self._time_up()

    def _time_up(self) -> None:
        if self._sending:
            self._maybe_close()

    def _maybe_close(self) -> None:
        plan = self.plan
        if plan.duration_s is not None and self.warmed[plan.name] >= plan.min_done:
            self._close()

    def _close(self) -> None:
        """Stop sending in the current phase; end it now or once drained."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._sending = False
        self._deadline = None
        if self._i == len(self._plans) - 1:
            self.stopped.set()
        self._notify()
        if self.plan.drain and self.inflight > 0:
            self._draining = True
        else:
            self._end()

    def _end(self) -> None:
        t = self._clock.now_ns()
        name = self.plan.name
        self.windows[name][1] = t
        self._on_phase(name, "end", t)
        if self._i + 1 < len(self._plans):
            self._begin(self._i + 1)
        else:
            self.finished.set()
            self._notify()
