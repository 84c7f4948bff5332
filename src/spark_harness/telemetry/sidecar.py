"""The sampling loop of the telemetry sidecar: one clock, one spool, isolated samplers.

Ticks follow an absolute schedule (start + k x cadence), so the cadence does not drift
with the time a sample takes; a tick that is missed entirely (the host stalled) is
skipped and counted, never made up with a burst. At each tick every sampler is asked at
once: ``/proc`` readers inline, blocking readers (NVML) in their own daemon thread,
network readers as tasks; the sample is written at a deadline within the tick and
stamped with the tick time. Whatever a sampler does (raise, hang, answer late) costs
only its own fields: a late answer becomes a row of its own with its tick's time, and a
sampler is not asked again while its previous read is still running.

The spool is JSON lines (see :mod:`spark_harness.contract`): ``sample``,
``unavailable`` (once per source), ``meta`` (periodically, at a flush and at exit:
cadence, devices, the sidecar's CPU time, sampler errors) and ``flush`` markers.
Each line is written whole and flushed; a flush marker is also fsynced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spark_harness.clock import Clock
from spark_harness.telemetry.sampler import AsyncSampler, Fields, Sampler, Unavailable

log = logging.getLogger(__name__)

AnySampler = Sampler | AsyncSampler
META_EVERY_S = 10.0
#: share of the cadence after which a sample is written without the samplers still
#: reading (their answers become rows of their own)
DEADLINE_SHARE = 0.9


class Spool:
    """JSON lines of one sidecar's life; each line one write, flushed to the OS at once.

    A spool left by an earlier sidecar at the same path (a point being redone) is moved
    aside, not appended to or overwritten, so two runs never mix and neither is lost.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.stat().st_size > 0:
            aside = path.with_name(f"{path.name}.{time.time_ns()}.prev")
            path.rename(aside)
            log.warning("moved the spool of an earlier run to %s", aside)
        self.path = path
        self._fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the sidecar

    def write(self, row: dict[str, Any]) -> None:
        self._fh.write(json.dumps(row, separators=(",", ":")) + "\n")
        self._fh.flush()

    def fsync(self) -> None:
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def _finite(fields: Fields) -> Fields:
    """Drop NaN/inf (a 0/0 hit rate): JSON has no such numbers and they are no measurement."""
    return {k: v for k, v in fields.items() if not (isinstance(v, float) and not math.isfinite(v))}


def _outcome(fut: asyncio.Future[Fields]) -> Fields | BaseException:
    return fut.exception() or fut.result()


def _in_thread(loop: asyncio.AbstractEventLoop, fn: Callable[[], Fields]) -> asyncio.Future[Fields]:
    """Run ``fn`` in a daemon thread (a hung driver call must not keep the process alive)."""
    fut: asyncio.Future[Fields] = loop.create_future()

    def settle(result: Fields | None, error: BaseException | None) -> None:
        if fut.done():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result or {})

    def run() -> None:
        try:
            result, error = fn(), None
        except BaseException as e:  # handed to the loop, not lost
            result, error = None, e
        with contextlib.suppress(RuntimeError):  # loop already closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="sampler", daemon=True).start()
    return fut


class Sidecar:
    """Samples ``samplers`` every ``cadence_ms`` into ``spool`` until stopped."""

    def __init__(
        self,
        samplers: list[AnySampler],
        spool: Spool,
        clock: Clock,
        cadence_ms: float,
        header: dict[str, Any],
        unavailable: Sequence[tuple[str, str]] = (),
        parent_pid: int | None = None,
    ) -> None:
        if cadence_ms <= 0:
            raise ValueError(f"cadence must be positive, got {cadence_ms} ms")
        self.samplers = list(samplers)
        self.spool = spool
        self.clock = clock
        self.period = cadence_ms / 1000.0
        self.header = header
        self._pending_unavailable = list(unavailable)
        self._recorded: set[str] = set()
        self._in_flight: dict[AnySampler, asyncio.Future[Fields]] = {}
        self._retired: list[AnySampler] = []
        self.late_results: dict[str, int] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self._collisions: set[str] = set()
        self.samples = 0
        self.late_ticks = 0
        self._stop = False
        self._flush = False
        self._waiter: asyncio.Future[None] | None = None
        self._cpu0 = 0.0
        self._wall0 = 0.0
        # the process that started the sidecar (taken at its start by the caller, so a
        # parent that died during set-up is noticed too); when it exits, the sidecar stops
        self._ppid = os.getppid() if parent_pid is None else parent_pid

    # ------------------------------------------------------------ control
    def request_stop(self) -> None:
        self._stop = True
        self._wake()

    def request_flush(self) -> None:
        self._flush = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep_until(self, when: float) -> None:
        """Sleep until loop time ``when`` or a stop/flush request, whichever comes first
        (a bare timer: this runs five to twenty times a second)."""
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_at(when, self._wake)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    # ---------------------------------------------------------- recording
    def _error(self, name: str, e: BaseException) -> None:
        entry = self.errors.setdefault(name, {"count": 0, "first": f"{type(e).__name__}: {e}"})
        entry["count"] += 1
        if entry["count"] == 1:
            log.warning(
                "sampler %s failed (logged once, retried each tick): %s", name, entry["first"]
            )

    def _unavailable(self, source: str, reason: str) -> None:
        if source in self._recorded:
            return
        self._recorded.add(source)
        log.info("source %s unavailable: %s", source, reason)
        self.spool.write(
            {"kind": "unavailable", "t_ns": self.clock.now_ns(), "source": source, "reason": reason}
        )

    def _meta(self) -> None:
        wall = time.monotonic() - self._wall0
        cpu = time.process_time() - self._cpu0
        self.spool.write({
            "kind": "meta",
            "t_ns": self.clock.now_ns(),
            **self.header,
            "cadence_ms": self.period * 1000.0,
            "samples": self.samples,
            "late_ticks": self.late_ticks,
            "cpu_s": cpu,
            "wall_s": wall,
            "cpu_pct": 100.0 * cpu / wall if wall > 0 else None,
            "errors": self.errors,
            "late_results": self.late_results,
        })  # fmt: skip

    # ----------------------------------------------------------- sampling
    def _merge(self, row: dict[str, Any], fields: Fields) -> None:
        for key, value in _finite(fields).items():
            if key in row:
                if key not in self._collisions:
                    self._collisions.add(key)
                    log.warning("field %s given by two sources; kept the first", key)
                continue
            row[key] = value

    async def sample_once(self) -> None:
        """Ask every sampler now and write one ``sample`` line stamped with this moment.

        A thread or network read still running at the deadline is not abandoned (a
        TensorRT-LLM poll consumes what it reads): its answer, when it comes, is written
        as a row of its own stamped with this tick's time.
        """
        loop = asyncio.get_running_loop()
        t_ns = self.clock.now_ns()
        deadline = loop.time() + self.period * DEADLINE_SHARE
        started: dict[AnySampler, asyncio.Future[Fields]] = {}
        for s in self.samplers:
            if isinstance(s, Sampler) and not s.blocking:
                continue
            if s in self._in_flight:  # the previous read has not returned yet
                self._error(s.name, TimeoutError("previous read has not returned"))
                continue
            if isinstance(s, AsyncSampler):
                started[s] = asyncio.ensure_future(s.sample())
            else:
                started[s] = _in_thread(loop, s.sample)
        row: dict[str, Any] = {"kind": "sample", "t_ns": t_ns}
        inline: dict[AnySampler, Fields | BaseException] = {}
        for s in self.samplers:  # the /proc readers, while the others run
            if isinstance(s, Sampler) and not s.blocking:
                try:
                    inline[s] = s.sample()
                except Exception as e:
                    inline[s] = e
        if started:
            await asyncio.wait(started.values(), timeout=max(0.0, deadline - loop.time()))
        for s in list(self.samplers):
            if s in inline:
                self._apply(s, inline[s], row)
            elif s in started and started[s].done():
                self._apply(s, _outcome(started[s]), row)
            elif s in started:
                self._in_flight[s] = started[s]
                started[s].add_done_callback(functools.partial(self._late, s, t_ns))
        self.spool.write(row)
        self.samples += 1

    def _apply(self, s: AnySampler, result: Fields | BaseException, row: dict[str, Any]) -> None:
        """Record what one sampler's read gave: fields, absences, a failure, or its end."""
        for source, reason in s.take_absent():
            self._unavailable(source, reason)
        if isinstance(result, Unavailable):
            self._unavailable(s.name, str(result))
            self.samplers.remove(s)
            self._retired.append(s)
        elif isinstance(result, BaseException):
            self._error(s.name, result)
        else:
            self._merge(row, result)

    def _late(self, s: AnySampler, t_ns: int, fut: asyncio.Future[Fields]) -> None:
        """A read that missed its sample's deadline: its own row, stamped with its tick."""
        self._in_flight.pop(s, None)
        if fut.cancelled() or s not in self.samplers:
            return
        self.late_results[s.name] = self.late_results.get(s.name, 0) + 1
        row: dict[str, Any] = {"kind": "sample", "t_ns": t_ns}
        self._apply(s, _outcome(fut), row)
        if len(row) > 2:
            self.spool.write(row)

    @staticmethod
    async def _close(s: AnySampler) -> None:
        try:
            if isinstance(s, AsyncSampler):
                await s.aclose()
            else:
                s.close()
        except Exception as e:
            log.warning("closing sampler %s: %s", s.name, e)

    async def flush(self) -> None:
        """One sample now, then the bookkeeping and a fsynced flush marker."""
        await self.sample_once()
        self._meta()
        self.spool.write({"kind": "flush", "t_ns": self.clock.now_ns()})
        self.spool.fsync()

    # --------------------------------------------------------------- loop
    async def run(self, on_started: Callable[[], None] | None = None) -> None:
        """Sample until SIGTERM/SIGINT (or the parent process dies); SIGUSR1 flushes."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGUSR1, self.request_flush)
        self._cpu0, self._wall0 = time.process_time(), time.monotonic()
        self._meta()
        for source, reason in self._pending_unavailable:
            self._unavailable(source, reason)
        if on_started:
            on_started()
        next_tick = loop.time()
        next_meta = next_tick + META_EVERY_S
        try:
            while not self._stop:
                if self._flush:
                    self._flush = False
                    await self.flush()
                    continue
                if loop.time() < next_tick:
                    await self._sleep_until(next_tick)
                    continue
                await self.sample_once()
                next_tick += self.period
                behind = loop.time() - next_tick
                if behind >= self.period:  # whole ticks missed: skip them, do not burst
                    missed = math.floor(behind / self.period)
                    self.late_ticks += missed
                    next_tick += missed * self.period
                if loop.time() >= next_meta:
                    self._meta()
                    next_meta += META_EVERY_S
                if os.getppid() != self._ppid:
                    log.warning("parent process exited; stopping")
                    self._stop = True
        finally:
            self._meta()
            for fut in self._in_flight.values():
                fut.cancel()  # threads cannot be cancelled; theirs are daemons
            for s in self.samplers + self._retired:
                await self._close(s)
