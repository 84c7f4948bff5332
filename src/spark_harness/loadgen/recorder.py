"""Records built and written off the event loop, by one writer thread.

Turning an attempt's raw chunks into its record (SSE framing, JSON decoding, token
counts) and writing it (``on_record``: the point's JSONL journal) costs a fraction of a
millisecond per request, all of it when a stream ends. In a closed loop a whole wave of
streams ends together, so doing it in the loop delayed the reads of every other stream
by the wave's sum (at 64 streams, tens of milliseconds: late reads that merge events).
The loop now only appends the attempt to a list; the thread wakes every
:data:`BATCH_S`, builds the records of what is there (decoding the kernel-stamped reads
among them) and hands them on, in the order the requests finished.

The thread shares the interpreter lock with the loop: while a run lasts, the switch
interval is lowered to :data:`SWITCH_INTERVAL_S`, so a loop that wakes for a read waits
at most that long for the thread to let go; waking by the clock rather than per record
spares the loop a hand-over of the lock at every request. A failure to write (a full disk) is
reported to the loop through ``on_failure`` (the run stops, as it did when the loop
wrote); the records queued before it are kept, none after it are written.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from spark_harness.clock import Clock
from spark_harness.loadgen.record import Attempt, make_record

#: the interpreter's thread switch interval while records are being written (default 5 ms)
SWITCH_INTERVAL_S = 0.0005
#: how often the thread takes what the loop queued
BATCH_S = 0.05

Record = dict[str, Any]


class Recorder:
    """``put`` an attempt (or a record already built) from the loop; ``close`` flushes."""

    def __init__(
        self,
        clock: Clock,
        count_piece: Callable[[str], int],
        on_record: Callable[[Record], None],
        errors: Counter[str],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._clock = clock
        self._count_piece = count_piece
        self._on_record = on_record
        self._errors = errors
        self._on_failure = on_failure
        self._pending: deque[Attempt | Record] = deque()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._work, name="loadgen-records", daemon=True)
        self._switch = sys.getswitchinterval()
        #: the exception that stopped the writing, if any
        self.error: BaseException | None = None
        #: streams whose records were built, and how many of them had kernel stamps
        self.streams = 0
        self.kernel_stamped = 0

    def start(self) -> None:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._thread.start()

    def build(self, att: Attempt) -> tuple[Record, str | None]:
        """The record and reply of ``att`` now, in the caller's thread (for a workload
        that needs the reply before its next request); ``put`` the record afterwards."""
        rec, reply = make_record(att, self._clock, self._count_piece)
        self.streams += 1
        self.kernel_stamped += any(att.kernel)
        if rec["error_kind"]:
            self._errors[rec["error_kind"]] += 1
        return rec, reply

    def put(self, item: Attempt | Record) -> None:
        self._pending.append(item)

    def close(self) -> None:
        """Write what is queued and stop the thread (blocks until it has)."""
        if self._thread.is_alive():
            self._closing.set()
            self._thread.join()
        sys.setswitchinterval(self._switch)

    def _work(self) -> None:
        while True:
            closing = self._closing.wait(BATCH_S)
            while self._pending:
                item = self._pending.popleft()
                if self.error is not None:
                    continue  # the journal failed: drain without writing
                try:
                    rec = self.build(item)[0] if isinstance(item, Attempt) else item
                    self._on_record(rec)
                except BaseException as e:  # handed to the loop, which stops the run
                    self.error = e
                    self._on_failure(e)
            if closing:
                return
