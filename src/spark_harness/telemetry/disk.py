"""Block-device counters turned into the ``iostat -x`` fields.

``/proc/diskstats`` (Documentation/admin-guide/iostats.rst) holds cumulative counters
per device. Between two reads, as sysstat's ``iostat -x`` computes them:

- ``r/s``, ``w/s``: completed reads/writes per second;
- ``rkB/s``, ``wkB/s``: sectors (always 512 bytes here) / 2 per second;
- ``r_await``, ``w_await``: time spent by those reads/writes (ms) / their number
  (0 when there were none, as iostat prints);
- ``aqu-sz``: weighted time in queue (ms) / elapsed ms;
- ``%util``: time the device had I/O in flight / elapsed time (capped at 100).

The kernel prints I/O counts as ``unsigned long`` and times as 32-bit ms, so times wrap
every ~49.7 days; a decrease is taken as a wrap when plausible and as a reset (device
re-attached) otherwise, in which case that interval gives no figures rather than wrong
ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

from spark_harness.telemetry.devices import BlockDevice
from spark_harness.telemetry.sampler import MIN_INTERVAL_S, Fields, Sampler, counter_delta

log = logging.getLogger(__name__)

SECTOR_BYTES = 512


@dataclass(frozen=True)
class DiskCounters:
    """The cumulative ``/proc/diskstats`` fields iostat's extended statistics use."""

    reads: int
    sectors_read: int
    read_ms: int
    writes: int
    sectors_written: int
    write_ms: int
    io_ms: int
    weighted_ms: int


#: (column in /proc/diskstats after major, minor, name; width of the kernel's counter)
_COLUMNS = {
    "reads": (0, 64),
    "sectors_read": (2, 64),
    "read_ms": (3, 32),
    "writes": (4, 64),
    "sectors_written": (6, 64),
    "write_ms": (7, 32),
    "io_ms": (9, 32),
    "weighted_ms": (10, 32),
}


def parse_diskstats(text: str, names: set[str] | None = None) -> dict[str, DiskCounters]:
    """Device name -> counters, for every device of a ``/proc/diskstats`` text (or those
    in ``names``)."""
    out: dict[str, DiskCounters] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 14 or (names is not None and parts[2] not in names):
            continue
        values = parts[3:]
        out[parts[2]] = DiskCounters(**{k: int(values[col]) for k, (col, _) in _COLUMNS.items()})
    return out


def deltas(prev: DiskCounters, cur: DiskCounters) -> DiskCounters | None:
    """Per-field increase across wraps; ``None`` if the counters were reset."""
    out: dict[str, int] = {}
    for f in fields(DiskCounters):
        width = _COLUMNS[f.name][1]
        widths = (32,) if width == 32 else (32, 64)  # a 32-bit kernel has 32-bit counts too
        d = counter_delta(getattr(prev, f.name), getattr(cur, f.name), widths)
        if d is None:
            return None
        out[f.name] = d
    return DiskCounters(**out)


def iostat(d: DiskCounters, interval_s: float) -> dict[str, float]:
    """``iostat -x`` figures for counter increases ``d`` over ``interval_s`` seconds."""
    ms = interval_s * 1000.0
    return {
        "r_s": d.reads / interval_s,
        "w_s": d.writes / interval_s,
        "rkb_s": d.sectors_read * SECTOR_BYTES / 1024.0 / interval_s,
        "wkb_s": d.sectors_written * SECTOR_BYTES / 1024.0 / interval_s,
        "r_await_ms": d.read_ms / d.reads if d.reads else 0.0,
        "w_await_ms": d.write_ms / d.writes if d.writes else 0.0,
        "aqu_sz": d.weighted_ms / ms,
        "util_pct": min(100.0, 100.0 * d.io_ms / ms),
    }


class DiskSampler(Sampler):
    """``disk_<dev>_*`` fields for the watched devices, from ``/proc/diskstats``."""

    name = "disk"

    def __init__(
        self,
        devices: list[BlockDevice],
        diskstats: Path = Path("/proc/diskstats"),
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if not devices:
            raise ValueError("DiskSampler needs at least one device")
        self.devices = devices
        self._names = {d.name for d in devices}
        self._path = diskstats
        self._now = now
        self._prev: dict[str, tuple[float, DiskCounters]] = {}
        self._missing: set[str] = set()
        self.sample()  # baseline, so the first sample already has rates

    def sample(self) -> Fields:
        text = self._path.read_text()
        now = self._now()
        stats = parse_diskstats(text, self._names)
        out: Fields = {}
        for dev in self.devices:
            cur = stats.get(dev.name)
            if cur is None:
                if dev.name not in self._missing:
                    log.warning("block device %s vanished from %s", dev.name, self._path)
                    self._missing.add(dev.name)
                self._prev.pop(dev.name, None)
                continue
            self._missing.discard(dev.name)
            prev = self._prev.get(dev.name)
            if prev is not None and now - prev[0] < MIN_INTERVAL_S:
                continue  # too short to be a rate; the next sample covers it
            self._prev[dev.name] = (now, cur)
            if prev is None:
                continue
            d = deltas(prev[1], cur)
            if d is None:
                log.warning("counters of %s were reset; interval skipped", dev.name)
                continue
            for key, value in iostat(d, now - prev[0]).items():
                out[f"disk_{dev.token}_{key}"] = value
        return out
