"""One clock pair per process, so request and telemetry streams align.

Every process that stamps events (load generator, sidecar, simulator) takes one anchor
at start: the wall clock and the monotonic clock read back to back. Durations come from
the monotonic clock; timestamps written to disk are integer nanoseconds since the epoch,
computed as ``wall_anchor + (monotonic_now - mono_anchor)``. Two processes on one host
therefore agree to within the wall-clock read jitter (microseconds) unless a time daemon
stepped the wall clock between their anchors (then by the step: milliseconds on the CI
machines seen, small beside the telemetry's 100-200 ms cadence), and no stream is bent
by a step during a run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field


def _read_pair() -> tuple[int, int]:
    """Read wall and monotonic clocks as close together as possible (best of 5)."""
    best: tuple[int, int, int] | None = None
    for _ in range(5):
        m0 = time.monotonic_ns()
        w = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or (m1 - m0) < best[2]:
            best = (w, (m0 + m1) // 2, m1 - m0)
    assert best is not None
    return best[0], best[1]


@dataclass(frozen=True)
class Clock:
    """A wall/monotonic anchor pair; ``now_ns`` gives epoch nanoseconds on a monotonic base."""

    wall_ns: int = field(default=0)
    mono_ns: int = field(default=0)

    @classmethod
    def start(cls) -> Clock:
        wall, mono = _read_pair()
        return cls(wall_ns=wall, mono_ns=mono)

    def now_ns(self) -> int:
        return self.wall_ns + (time.monotonic_ns() - self.mono_ns)

    def to_epoch_ns(self, mono_ns: int) -> int:
        """Convert a monotonic reading taken in this process to epoch nanoseconds."""
        return self.wall_ns + (mono_ns - self.mono_ns)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)
