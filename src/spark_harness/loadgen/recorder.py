"""Records built and journaled by a recorder *process*, away from the event loop.

Turning an attempt's raw reads into its record (HTTP chunking, SSE framing, JSON
decoding, token counts) costs about 10 µs per streamed event, all of it when a stream
ends. In a closed loop a whole wave of streams ends together. Done in the event loop,
it delayed every other stream's reads by the wave's sum; done in a thread (as before),
it still held the interpreter lock the loop needs for every socket read: at 256 streams
× 128 tokens the loop waited so often for the lock that 80 % of the first tokens were
read late enough to merge with the next event (TTFT p99 error +60 to +170 ms, against
+0.1 ms with the building deferred). So the records are built in a separate process,
which has its own interpreter lock:

- the loop only appends each finished attempt (raw reads and stamps) to a list;
- a thread of the load generator wakes every :data:`BATCH_S` and pipes what is there
  to the recorder process (pickling is C code; the pipe write releases the lock);
- the recorder process builds each record and appends it to the journal
  (:class:`.journal.JournalFile`), then reports what it wrote (counts per phase, error
  kinds) back through a second pipe.

A workload that needs each reply before its next request (chat) still builds its records
in the loop (:meth:`Recorder.build`) and sends the finished record. A write that fails
(a full disk) is reported back with its exception and stops the run; the records
written before it stay, none after it are written. The process ignores Ctrl-C and
SIGTERM: it finishes what the load generator sends before its close and exits; it also
exits when the load generator dies (its input pipe closes), so it is never an orphan.

Run as ``python -m spark_harness.loadgen.recorder IN_FD OUT_FD`` by :class:`Recorder`
only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import signal
import subprocess
import sys
import threading
import traceback
from collections import Counter, deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from spark_harness.clock import Clock
from spark_harness.loadgen.journal import Counts, Journal, JournalFile, count, merge
from spark_harness.loadgen.record import Attempt, make_record
from spark_harness.workloads.counting import Counter as TokenCounter

#: how often the thread pipes what the loop queued
BATCH_S = 0.005
#: the interpreter's thread switch interval while the run lasts (default 5 ms): the
#: thread's moments with the lock are short, and a loop waking for a read waits at most this
SWITCH_INTERVAL_S = 0.0005
#: room in the pipe to the recorder process for a wave of finished streams
PIPE_BYTES = 1 << 20
#: the recorder process yields the processor to the load generator: on a shared core
#: (the benchmarks' "client on one core") at equal priority it held the loop's reads up
#: for a scheduler slice (256 streams x 512 tokens: TTFT error p50 39 ms, p99 44 ms);
#: at 10 the loop's wake-ups preempt it (p50 0.02-0.7 ms, p99 0.06-0.09 ms)
NICENESS = 10
#: how long closing waits for the recorder process to write what it was sent
CLOSE_TIMEOUT_S = 300.0

Record = dict[str, Any]


class RecorderExited(RuntimeError):
    """The recorder process ended before the run did: nothing more can be journaled."""


class Recorder:
    """``put`` an attempt (or a record already built) from the loop; ``close`` flushes."""

    def __init__(
        self,
        clock: Clock,
        counter: TokenCounter,
        journal: Journal,
        errors: Counter[str],
        on_failure: Callable[[BaseException], None],
    ) -> None:
        self._clock = clock
        self._counter = counter
        self._journal = journal
        self._errors = errors
        self._on_failure = on_failure
        self._pending: deque[Attempt | Record] = deque()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._work, name="loadgen-records", daemon=True)
        self._switch = sys.getswitchinterval()
        self._proc: subprocess.Popen[bytes] | None = None
        self._to: Connection | None = None
        self._from: Connection | None = None
        #: the exception that stopped the journaling, if any
        self.error: BaseException | None = None
        #: streams whose records were built, and how many of them had kernel stamps
        self.streams = 0
        self.kernel_stamped = 0

    def start(self) -> None:
        """Start the recorder process (it creates the journal) and the piping thread."""
        down_r, down_w = os.pipe()  # load generator -> recorder
        up_r, up_w = os.pipe()  # recorder -> load generator
        with contextlib.suppress(OSError):  # a lower system limit: the default pipe works
            fcntl.fcntl(down_w, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "spark_harness.loadgen.recorder", str(down_r), str(up_w)],
            pass_fds=(down_r, up_w),
            stdin=subprocess.DEVNULL,
        )
        os.close(down_r)
        os.close(up_w)
        self._to = Connection(down_w, readable=False)
        self._from = Connection(up_r, writable=False)
        self._to.send((str(self._journal.path), self._clock, self._counter))
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._thread.start()

    def build(self, att: Attempt) -> tuple[Record, str | None]:
        """The record and reply of ``att`` now, in the caller's thread (for a workload
        that needs the reply before its next request); ``put`` the record afterwards."""
        rec, reply = make_record(att, self._clock, self._counter.count_piece)
        self.streams += 1
        self.kernel_stamped += any(att.kernel)
        return rec, reply

    def put(self, item: Attempt | Record) -> None:
        self._pending.append(item)

    def close(self) -> None:
        """Journal what is queued and stop the thread and the process (blocks until
        they have)."""
        if self._thread.is_alive():
            self._closing.set()
            self._thread.join()
        sys.setswitchinterval(self._switch)
        for conn in (self._to, self._from):
            if conn is not None:
                conn.close()
        if self._proc is not None:
            try:
                self._proc.wait(CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _work(self) -> None:
        assert self._to is not None
        try:
            while True:
                closing = self._closing.wait(BATCH_S)
                while self._pending:
                    self._to.send(self._pending.popleft())
                self._replies(block=False)
                if closing:
                    self._to.send(None)  # the end: the process writes what it has, then reports
                    self._replies(block=True)
                    return
        except (OSError, EOFError) as e:  # the process died: report it, once
            code = self._proc.poll() if self._proc is not None else None
            self._fail(RecorderExited(f"the recorder process exited (code {code}): {e}"))
        except Exception as e:  # e.g. an item that cannot be pickled: stop, never hang
            self._fail(e)

    def _replies(self, *, block: bool) -> None:
        """Take the process's reports: what it wrote, a failure, and (blocking) the end."""
        assert self._from is not None
        while block or self._from.poll():
            kind, *body = self._from.recv()
            if kind == "wrote":
                counts, errors = body
                merge(self._journal.counts, counts)
                self._errors.update(errors)
            elif kind == "failed":
                self._fail(body[0])
            elif kind == "done":
                self.streams += body[0]
                self.kernel_stamped += body[1]
                return

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            self._on_failure(exc)


def _serve(inbox: Connection, outbox: Connection) -> None:
    """The recorder process: build and journal each item until the end marker (or the
    load generator's end), reporting counts after each burst."""
    path, clock, counter = inbox.recv()
    journal = JournalFile(Path(path))
    failed = False
    streams = kernel = 0
    counts: Counts = {}
    errors: Counter[str] = Counter()
    try:
        while True:
            try:
                item = inbox.recv()
            except EOFError:  # the load generator is gone: keep what was written
                break
            if item is None:
                break
            if failed:
                continue  # the journal failed: drain without writing
            try:
                if isinstance(item, Attempt):
                    rec = make_record(item, clock, counter.count_piece)[0]
                    streams += 1
                    kernel += any(item.kernel)
                else:
                    rec = item
                journal.write(rec)
            except Exception as e:  # a full disk, or a record that could not be built
                failed = True
                if not isinstance(e, OSError):
                    traceback.print_exc()  # into the point's log
                _report_failure(outbox, e)
                continue
            count(counts, rec.get("phase", "?"), bool(rec.get("ok")))
            if rec.get("error_kind"):
                errors[rec["error_kind"]] += 1
            if not inbox.poll():  # a pause in the burst: report what was written
                outbox.send(("wrote", counts, errors))
                counts, errors = {}, Counter()
    finally:
        journal.close()
        if counts:
            outbox.send(("wrote", counts, errors))
        outbox.send(("done", streams, kernel))


def _report_failure(outbox: Connection, e: Exception) -> None:
    """Send the exception that stopped the journal (as its repr, if it cannot be pickled)."""
    try:
        outbox.send(("failed", e))
    except (pickle.PicklingError, TypeError, AttributeError):
        outbox.send(("failed", RuntimeError(f"recorder: {e!r}")))


def main(argv: list[str]) -> None:
    # Ctrl-C and Snakemake's SIGTERM reach the whole process group: the load generator
    # saves what was measured, and this process writes what it was sent before then
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    os.nice(NICENESS)
    inbox = Connection(int(argv[0]), writable=False)
    outbox = Connection(int(argv[1]), readable=False)
    with contextlib.suppress(BrokenPipeError):  # the load generator is gone
        _serve(inbox, outbox)


if __name__ == "__main__":
    main(sys.argv[1:])
