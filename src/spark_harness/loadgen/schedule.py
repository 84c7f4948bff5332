"""Open-loop send schedules: absolute offsets from one start time.

Offsets are cumulative sums of seeded inter-arrival gaps, so request ``i`` is due at
``start + offset_i`` however late earlier sends were; a dispatcher never sleeps relative
to its previous send, and a late send shows up as schedule lag rather than as a slower
rate.

- ``constant``: gaps of exactly ``1 / rate``;
- ``poisson``: exponential gaps with mean ``1 / rate``;
- ``gamma``: gamma gaps with shape ``burstiness`` and mean ``1 / rate`` (coefficient of
  variation ``1 / sqrt(burstiness)``: below 1 is burstier than Poisson, 1 is Poisson).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

OPEN_LOOP_KINDS = ("constant", "poisson", "gamma")


def arrivals(kind: str, rate: float, seed: int, burstiness: float = 1.0) -> Iterator[int]:
    """Endless arrival offsets in ns from the start; the first is at 0."""
    if kind not in OPEN_LOOP_KINDS:
        raise ValueError(f"load.kind: {kind!r} is not an open-loop kind {OPEN_LOOP_KINDS}")
    if not rate > 0:
        raise ValueError(f"load.rate must be > 0 for an open loop, got {rate!r}")
    if not burstiness > 0:
        raise ValueError(f"load.burstiness must be > 0, got {burstiness!r}")
    rng = random.Random(f"{seed}:arrivals")
    mean = 1.0 / rate
    t = 0.0
    i = 0
    while True:
        yield round(t * 1e9)
        i += 1
        if kind == "constant":
            t = i * mean  # no accumulated rounding
        elif kind == "poisson":
            t += rng.expovariate(rate)
        else:
            t += rng.gammavariate(burstiness, mean / burstiness)


def schedule(
    kind: str, rate: float, seed: int, duration_s: float, burstiness: float = 1.0
) -> list[int]:
    """The offsets of :func:`arrivals` that fall before ``duration_s``."""
    end = round(duration_s * 1e9)
    out = []
    for t in arrivals(kind, rate, seed, burstiness):
        if t >= end:
            break
        out.append(t)
    return out
