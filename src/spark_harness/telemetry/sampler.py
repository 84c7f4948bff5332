"""What every telemetry source offers the sidecar, and the counter arithmetic they share.

A sampler reads one source (``/proc``, NVML, a metrics endpoint) and returns canonical
fields (:data:`spark_harness.contract.TELEMETRY_FIELD_DOC`). Two kinds of trouble are
kept apart, because the analysis must tell "not measured here" from "measured as zero":

- :class:`Unavailable`: the source does not exist on this machine (no NVML, no cgroup
  v2). The sidecar records it once as an ``unavailable`` row and stops asking.
- :meth:`Sampler.absent`: one part of a source is missing (GB10 has no separate GPU
  memory); recorded once, the rest of the source goes on.
- Any other exception is a failure of this read: logged once, retried next tick.
"""

from __future__ import annotations

import time

Fields = dict[str, float | int]


class Unavailable(Exception):
    """The whole source is absent here; the message says why (recorded once, never faked)."""


class _Base:
    #: the source name used in logs and ``unavailable`` rows
    name: str = "sampler"

    def __init__(self) -> None:
        self._absent: list[tuple[str, str]] = []

    def absent(self, source: str, reason: str) -> None:
        """Declare a part of this source unavailable (the sidecar records it once)."""
        self._absent.append((source, reason))

    def take_absent(self) -> list[tuple[str, str]]:
        out, self._absent = self._absent, []
        return out

    def close(self) -> None:
        """Release what the source holds (sessions, libraries)."""


class Sampler(_Base):
    """A source read synchronously. ``blocking`` ones (a driver call that may hang) run in
    their own thread, so a hung read silences only itself; the rest run in the loop."""

    blocking: bool = False

    def sample(self) -> Fields:
        raise NotImplementedError


class AsyncSampler(_Base):
    """A source read over the network, awaited with a deadline in the sidecar's loop."""

    async def sample(self) -> Fields:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release network resources (called inside the loop)."""


def counter_delta(prev: int, cur: int, widths: tuple[int, ...] = (32, 64)) -> int | None:
    """Increase of a kernel counter between two reads, across a wrap; ``None`` on a reset.

    A counter that went down either wrapped at one of its possible ``widths`` (the old
    value near the top, the new one near zero) or was reset (device re-attached, process
    restarted): a reset gives ``None`` so no rate is invented for that interval.
    """
    if cur >= prev:
        return cur - prev
    for bits in widths:
        limit = 1 << bits
        if prev < limit:
            wrapped = limit - prev + cur
            if wrapped < limit >> 2:
                return wrapped
    return None


#: shortest interval a rate is computed over: kernel counters tick in ms (disk) or 10 ms
#: (CPU), so a flush sample taken just after a tick would give noise, not a rate
MIN_INTERVAL_S = 0.02


class Rate:
    """Per-second rates of cumulative counters between consecutive reads of one source."""

    def __init__(self) -> None:
        self._prev: dict[str, int] | None = None
        self._t_prev = 0.0

    def update(self, values: dict[str, int], t: float | None = None) -> dict[str, float] | None:
        """Store this read; return rates since the previous one. ``None`` for the first read,
        when any counter reset (no interval mixes two counter epochs), or when less than
        :data:`MIN_INTERVAL_S` passed (the previous read is then kept as the base)."""
        now = time.monotonic() if t is None else t
        prev, t_prev = self._prev, self._t_prev
        if prev is not None and now - t_prev < MIN_INTERVAL_S:
            return None
        self._prev, self._t_prev = dict(values), now
        if prev is None:
            return None
        dt = now - t_prev
        out: dict[str, float] = {}
        for key, cur in values.items():
            if key not in prev:
                continue
            d = counter_delta(prev[key], cur)
            if d is None:
                return None
            out[key] = d / dt
        return out
