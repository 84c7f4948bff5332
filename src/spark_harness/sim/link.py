"""The modeled G1 <-> G2 link: one bandwidth shared fairly by concurrent transfers.

Host-tier copies are modeled, not performed (on a DGX Spark "host" and "GPU" are the
same LPDDR5x). Concurrent transfers share the bandwidth equally (processor sharing), so
an onboard slows down while offloads or other onboards are in flight. Time is passed
in explicitly so the engine can advance the link to any instant it looks at.
"""

from __future__ import annotations

from dataclasses import dataclass

_EPS_BYTES = 1e-6


@dataclass(eq=False, slots=True)
class LinkTransfer:
    remaining: float  # bytes
    done_at: float | None = None


class SharedLink:
    """Processor-sharing link of ``bytes_per_s``."""

    def __init__(self, bytes_per_s: float) -> None:
        if bytes_per_s <= 0:
            raise ValueError("link bandwidth must be positive")
        self.bytes_per_s = bytes_per_s
        self._active: list[LinkTransfer] = []
        self._t = 0.0

    def start(self, nbytes: float, now: float) -> LinkTransfer:
        self.advance(now)
        transfer = LinkTransfer(remaining=float(nbytes))
        if nbytes <= 0:
            transfer.done_at = now
        else:
            self._active.append(transfer)
        return transfer

    def advance(self, now: float) -> None:
        """Progress every active transfer up to ``now``, completing those that finish."""
        if not self._active:
            self._t = max(self._t, now)
            return
        while self._active and self._t < now:
            rate = self.bytes_per_s / len(self._active)
            first = min(t.remaining for t in self._active)
            t_first = self._t + first / rate
            if t_first > now:
                moved = rate * (now - self._t)
                for t in self._active:
                    t.remaining -= moved
                self._t = now
                return
            for t in self._active:
                t.remaining -= first
                if t.remaining <= _EPS_BYTES:
                    t.remaining = 0.0
                    t.done_at = t_first
            self._active = [t for t in self._active if t.done_at is None]
            self._t = t_first
        self._t = max(self._t, now)

    def next_completion(self) -> float | None:
        """When the next active transfer will finish if nothing else starts."""
        if not self._active:
            return None
        rate = self.bytes_per_s / len(self._active)
        return self._t + min(t.remaining for t in self._active) / rate

    @property
    def busy(self) -> int:
        return len(self._active)
