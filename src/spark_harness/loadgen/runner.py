"""``run_load``: one point's load phases against one endpoint.

Load kinds (``spec["load"]``):

- ``closed``: ``users`` user slots, each sending its next request as soon as its last
  one finished (or, for chat, when a session's turn is due), or after a random pause of
  mean ``think_s`` (exponential, seeded per user): users that think between requests.
  A user whose request was not served (:data:`NOT_SERVED`: turned away, an HTTP error,
  no connection) waits before its next request, as clients do: a rejection's
  ``Retry-After`` (at most :data:`RETRY_AFTER_MAX_S`), else a pause doubling from
  :data:`NOT_SERVED_PAUSE_S` to :data:`NOT_SERVED_PAUSE_MAX_S` while such failures last.
  Without it a server that failed at once got a request per user per round trip (16
  users against a loopback server: 12,000-15,000 records a second). A stream that was
  served but broke (``bad_sse``, ``reset``, ``timeout``, ``other``) took the server's
  time and is followed at once, as a success is: pausing there would lower the load a
  server that always breaks its streams the same way is measured at;
- ``constant`` / ``poisson`` / ``gamma``: an open loop at ``rate`` req/s from a
  precomputed absolute schedule, optionally capped at ``max_concurrency`` in flight (the
  wait for a slot is recorded as queue time, the lateness as schedule lag);
- ``trace``: the trace workload's own timestamps, scaled.

Phases: warm-up -> load -> cool-down (``spec["phases"]``: ``warmup_s``, ``load_s``,
``max_requests``, ``cooldown_s``), or populate -> thrash -> replay for ``rehydrate``.
Each finished request is queued for the recorder process (:mod:`.recorder`), which
builds its record and appends it to the point's journal (:mod:`.journal`) in finishing
order; failures are records.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from spark_harness.clock import Clock
from spark_harness.contract import Endpoint
from spark_harness.loadgen import eventloop
from spark_harness.loadgen.client import Client
from spark_harness.loadgen.journal import Journal
from spark_harness.loadgen.phases import PhasePlan, Phases
from spark_harness.loadgen.progress import progress
from spark_harness.loadgen.record import Attempt
from spark_harness.loadgen.recorder import Recorder
from spark_harness.loadgen.schedule import OPEN_LOOP_KINDS, arrivals
from spark_harness.workloads import Counter as TokenCounter
from spark_harness.workloads import Job, Workload, build_workload

log = logging.getLogger("spark_harness.loadgen")

DEFAULT_REQUEST_TIMEOUT_S = 120.0
#: the failures after which a closed-loop user pauses: the server did not serve the request
NOT_SERVED = frozenset({"rejected", "http", "connect"})
#: a closed-loop user's first pause after one, doubled while they last
NOT_SERVED_PAUSE_S = 0.01
NOT_SERVED_PAUSE_MAX_S = 1.0
#: the longest a rejection's Retry-After holds a user (a phase's end wakes it anyway)
RETRY_AFTER_MAX_S = 10.0


class LoadError(ValueError):
    """The point's load or phase settings cannot be run; the message names the key."""


@dataclass(frozen=True)
class LoadSettings:
    """The ``load`` and ``phases`` sections of a point spec, checked."""

    kind: str
    users: int | None
    rate: float | None
    burstiness: float
    max_concurrency: int | None
    think_s: float
    warmup_s: float
    load_s: float
    cooldown_s: float
    max_requests: int | None
    request_timeout_s: float
    seed: int

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> LoadSettings:
        load = spec.get("load") or {}
        ph = spec.get("phases") or {}
        kind = load.get("kind", "closed")
        users = load.get("users")
        if kind == "closed":
            if isinstance(users, bool) or not isinstance(users, int) or users < 1:
                raise LoadError(
                    f"load.users must be an integer >= 1 for a closed loop, got {users!r}"
                    + (" (resolve `u_work` before calling run_load)" if users == "u_work" else "")
                )
            think = load.get("think_s", 0.0)
            if isinstance(think, bool) or not isinstance(think, int | float) or think < 0:
                raise LoadError(f"load.think_s must be a number >= 0, got {think!r}")
        elif "think_s" in load:
            raise LoadError(f"load.think_s is for a closed loop, not load.kind {kind!r}")
        elif kind in OPEN_LOOP_KINDS:
            rate = load.get("rate")
            if rate is None:
                raise LoadError(f"load.rate is required for load.kind {kind!r}")
            if not rate > 0 or not load.get("burstiness", 1.0) > 0:
                raise LoadError("load.rate and load.burstiness must be > 0")
        elif kind != "trace":
            raise LoadError(f"load.kind: unknown kind {kind!r}")
        return cls(
            kind=kind,
            users=users if kind == "closed" else None,
            rate=load.get("rate"),
            burstiness=float(load.get("burstiness", 1.0)),
            max_concurrency=load.get("max_concurrency"),
            think_s=float(load.get("think_s", 0.0)),
            warmup_s=float(ph.get("warmup_s", 0.0)),
            load_s=float(ph.get("load_s", 60.0)),
            cooldown_s=float(ph.get("cooldown_s", 0.0)),
            max_requests=ph.get("max_requests"),
            request_timeout_s=float(ph.get("request_timeout_s", DEFAULT_REQUEST_TIMEOUT_S)),
            seed=int(spec.get("seed", 0)),
        )


def phase_plans(settings: LoadSettings, workload: Workload) -> list[PhasePlan]:
    """The phases a workload runs through under these settings."""
    if workload.finite_phases:
        return [PhasePlan(name, drain=True) for name in workload.phases]
    warmup, load, cooldown = workload.phases
    return [
        PhasePlan(warmup, settings.warmup_s, min_done=workload.warmup_min_requests(settings.users)),
        PhasePlan(load, settings.load_s, max_requests=settings.max_requests),
        PhasePlan(cooldown, settings.cooldown_s, drain=True),
    ]


class _Run:
    """The state of one ``run_load`` call."""

    def __init__(
        self,
        endpoint: Endpoint,
        settings: LoadSettings,
        workload: Workload,
        counter: TokenCounter,
        clock: Clock,
        journal: Journal,
        on_phase: Callable[[str, str, int], None],
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.workload = workload
        self.phases = Phases(phase_plans(settings, workload), clock, on_phase)
        self.errors: Counter[str] = Counter()
        self.recorder = Recorder(clock, counter, journal, self.errors, self._failed)
        # a workload that overrides ``finished`` wants each reply before its next request
        self.needs_reply = type(workload).finished is not Workload.finished
        self._tg: asyncio.TaskGroup | None = None
        self._loop = asyncio.get_running_loop()
        self.dropped = 0  # open loop: queued for a slot when sending stopped, never sent
        self._ids = count()
        self.users = settings.users
        if self.users is not None and workload.max_users and self.users > workload.max_users:
            log.warning(
                "load.users %d > %d (the workload has at most that many requests outstanding); "
                "using %d users",
                self.users,
                workload.max_users,
                workload.max_users,
            )
            self.users = workload.max_users
        self.slots = (
            asyncio.Semaphore(settings.max_concurrency) if settings.max_concurrency else None
        )
        self._unclaimed = 0  # open-loop arrivals waiting for a slot, not yet claimed
        self._all_claimed = asyncio.Event()

    def _planned_s(self) -> float | None:
        if self.workload.finite_phases:
            return None
        s = self.settings
        return s.warmup_s + s.load_s + s.cooldown_s

    async def run(self) -> dict[str, list[int]]:
        connections = self.users or self.settings.max_concurrency or 0
        client = Client(
            self.endpoint,
            connections=connections,
            timeout_s=self.settings.request_timeout_s,
            max_prompt_tokens=self.endpoint.max_num_tokens,
        )
        self.recorder.start()
        try:
            async with (
                client,
                progress(self.phases, self.errors, self._planned_s()),
                asyncio.TaskGroup() as tg,
            ):
                self._tg = tg
                self.phases.start()
                if self.users is not None:
                    for u in range(self.users):
                        tg.create_task(self._user(client, u))
                else:
                    tg.create_task(self._dispatch(client, tg))
        finally:
            self._tg = None
            self.recorder.close()  # the run's last records are written before it returns
        if self.recorder.error is not None:  # failed while the last records were written
            # a full disk (OSError) or the recorder process's end (RecorderExited)
            raise BaseExceptionGroup("a record could not be written", [self.recorder.error])
        log.info(
            "event stamps: kernel receive time for %d of %d streams (the rest: event loop)",
            self.recorder.kernel_stamped,
            self.recorder.streams,
        )
        if self.dropped:
            log.warning(
                "%d scheduled requests were not sent: sending stopped while they waited "
                "for a slot (load.max_concurrency)",
                self.dropped,
            )
        return self.phases.windows

    def _failed(self, exc: BaseException) -> None:
        """A record could not be journaled (reported by the recorder's thread): stop the
        run with the error."""

        async def fail() -> None:
            raise exc

        def in_loop() -> None:
            # a group already closing has no new tasks: the error is raised after it
            if self._tg is not None:
                with contextlib.suppress(RuntimeError):
                    self._tg.create_task(fail())

        self._loop.call_soon_threadsafe(in_loop)

    async def _user(self, client: Client, user: int) -> None:
        phases = self.phases
        mean_think_ns = self.settings.think_s * 1e9
        rng = random.Random(f"{self.settings.seed}:{user}")
        pause_s = 0.0  # the last pause after a request not served (0: the last was served)
        while True:
            phase = await phases.wait_sending()
            if phase is None:
                return
            job = self.workload.next(phase, user)
            if job is None:
                phases.exhausted(phase)
                continue
            due = job.due_ns
            if due is None and mean_think_ns:
                due = time.monotonic_ns() + round(rng.expovariate(1.0) * mean_think_ns)
            if due is None:
                ready = time.monotonic_ns()
            else:
                ready = due
                if not await phases.sleep_until(due):
                    return
            sent_in = phases.claim()
            if sent_in is None:
                continue
            job = self._rebuilt(job, phase, sent_in, user)
            att = await self._one(client, job, sent_in, ready, user=user)
            if att.error_kind not in NOT_SERVED:
                pause_s = 0.0
                continue
            pause_s = min(max(2 * pause_s, NOT_SERVED_PAUSE_S), NOT_SERVED_PAUSE_MAX_S)
            wait_s = pause_s if att.retry_after_s is None else att.retry_after_s
            wait_s = min(wait_s, RETRY_AFTER_MAX_S)
            if not await phases.sleep_until(time.monotonic_ns() + round(wait_s * 1e9)):
                return

    async def _dispatch(self, client: Client, tg: asyncio.TaskGroup) -> None:
        s, phases = self.settings, self.phases
        offsets = (
            self.workload.arrivals_ns()
            if s.kind == "trace"
            else arrivals(s.kind, float(s.rate or 0), s.seed, s.burstiness)
        )
        # a trace workload always has arrivals: run_standalone refuses trace load without one
        assert offsets is not None
        start = time.monotonic_ns()
        for offset in offsets:
            due = start + offset
            if not await phases.sleep_until(due):
                break
            phase = phases.current
            if phase is None:
                break
            job = self.workload.next(phase, None)
            if job is None:
                phases.exhausted(phase)
                break
            if self.slots is None:  # sent now: its phase is decided now
                sent_in = phases.claim()
                if sent_in is None:
                    break
                job = self._rebuilt(job, phase, sent_in, None)
                tg.create_task(self._one(client, job, sent_in, time.monotonic_ns(), scheduled=due))
            else:
                self._unclaimed += 1
                tg.create_task(self._queued(client, job, phase, due, self.slots))
        # the schedule (a trace) has ended: once the last arrivals have their phase, the
        # remaining phases have nothing to send
        if self._unclaimed:
            self._all_claimed.clear()
            await self._all_claimed.wait()
        while (phase := phases.current) is not None:
            phases.exhausted(phase)

    async def _queued(
        self, client: Client, job: Job, built_for: str, scheduled: int, slots: asyncio.Semaphore
    ) -> None:
        """An open-loop arrival waiting for one of ``max_concurrency`` slots."""
        ready = time.monotonic_ns()
        async with slots:
            sent_in = self.phases.claim()
            self._unclaimed -= 1
            if self._unclaimed == 0:
                self._all_claimed.set()
            if sent_in is None:
                self.dropped += 1
            else:
                job = self._rebuilt(job, built_for, sent_in, None)
                await self._one(client, job, sent_in, ready, scheduled=scheduled)

    def _rebuilt(self, job: Job, built_for: str, sent_in: str, user: int | None) -> Job:
        """The job to send in ``sent_in``. A request belongs to the phase it is sent in,
        and the time of the phase it was built for can run out while it waits (a think
        time, a slot, the loop's turn); where the phase shapes the request (a cold-LoRA
        warm-up's base model) it is built again. Only timed phases end that way, and
        their workloads never run out of requests (``or job`` is not reached)."""
        if sent_in == built_for or not self.workload.phase_shapes_requests:
            return job
        return self.workload.next(sent_in, user) or job

    async def _one(
        self,
        client: Client,
        job: Job,
        phase: str,
        ready: int,
        *,
        user: int | None = None,
        scheduled: int | None = None,
    ) -> Attempt:
        """Send one claimed request, hand its record on, and tell the workload."""
        req = job.request
        att = Attempt(
            request_id=f"r{next(self._ids):06d}",
            phase=phase,
            ready_ns=ready,
            prompt_tokens_client=req.prompt_tokens,
            user_id=user,
            session_id=req.session_id,
            turn=req.turn,
            adapter=req.adapter,
            scheduled_ns=scheduled,
        )
        try:
            await client.send(req, att)
            if self.needs_reply:
                rec, reply = self.recorder.build(att)
                self.workload.finished(job, reply, att.end_ns or time.monotonic_ns())
                self.recorder.put(rec)
            else:
                self.workload.finished(job, None, att.end_ns or time.monotonic_ns())
                self.recorder.put(att)
        finally:
            self.phases.finish(phase, job.warms)
        return att


async def run_load(
    endpoint: Endpoint,
    spec: Mapping[str, Any],
    clock: Clock,
    journal: Journal,
    on_phase: Callable[[str, str, int], None],
) -> dict[str, list[int]]:
    """Run a point's load phases, journaling every finished request in ``journal`` (its
    counts kept current); return ``{phase: [start_ns, end_ns]}``.

    Raises LoadError, WorkloadError or InputError for settings that cannot run (before
    any request is sent); request failures are records, never exceptions.
    """
    settings = LoadSettings.from_spec(spec)
    workload, counter = build_workload(spec, server_is_sim=endpoint.kind == "sim")
    if settings.kind == "trace" and workload.arrivals_ns() is None:
        raise LoadError("load.kind `trace` needs workload.kind `trace`")
    if workload.closed_loop_only and settings.kind != "closed":
        raise LoadError(
            f"workload.kind {spec['workload']['kind']!r} needs load.kind `closed` "
            f"(its requests depend on earlier answers), got {settings.kind!r}"
        )
    return await _Run(endpoint, settings, workload, counter, clock, journal, on_phase).run()


def run_standalone(
    base_url: str,
    spec: Mapping[str, Any],
    *,
    model: str = "default",
    kind: str = "external",
    clock: Clock | None = None,
    poll_gap_ns: int = eventloop.POLL_GAP_NS,
) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
    """Run one point outside the workflow (tests, benchmarks, a quick look at a server):
    the records are read back from a temporary journal. ``kind: sim`` makes prompt token
    counts exact; ``poll_gap_ns`` is the event loop's (:mod:`.eventloop`; 0: none)."""
    ep = Endpoint(stack="standalone", kind=kind, base_url=base_url, model=model, pid=os.getpid())
    with tempfile.TemporaryDirectory(prefix="spark-harness-load-") as tmp:
        journal = Journal(Path(tmp) / "requests.jsonl")
        load = run_load(ep, spec, clock or Clock.start(), journal, lambda *_: None)
        windows = eventloop.run(load, eventloop.gap_for(base_url, poll_gap_ns))
        records = [json.loads(line) for line in journal.path.read_text().splitlines()]
    return records, windows
