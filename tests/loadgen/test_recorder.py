"""The writer thread: records in finishing order, a write failure reported to the loop."""

from __future__ import annotations

import errno
import sys
from collections import Counter
from typing import Any

from spark_harness.clock import Clock
from spark_harness.loadgen.record import Attempt
from spark_harness.loadgen.recorder import SWITCH_INTERVAL_S, Recorder
from spark_harness.tokens import count_text

CLOCK = Clock(wall_ns=1_000_000_000_000, mono_ns=0)
DONE = b'data: {"choices":[{"text":"hi"}]}\n\ndata: [DONE]\n\n'


def attempt(rid: str, chunks: list[tuple[int, bytes]]) -> Attempt:
    return Attempt(request_id=rid, phase="load", ready_ns=0, sent_ns=1, end_ns=9, chunks=chunks)


def test_records_are_built_in_the_thread_in_finishing_order() -> None:
    written: list[dict[str, Any]] = []
    failures: list[BaseException] = []
    errors: Counter[str] = Counter()
    switch = sys.getswitchinterval()
    rec = Recorder(CLOCK, count_text, written.append, errors, failures.append)
    rec.start()
    assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    rec.put(attempt("a", [(5, DONE)]))
    rec.put({"request_id": "b", "ok": True})  # a record the loop built itself
    rec.put(attempt("c", []))  # an empty body: a bad_sse record
    rec.close()
    assert sys.getswitchinterval() == switch
    assert [r["request_id"] for r in written] == ["a", "b", "c"]
    assert written[0]["ok"] and written[0]["ttft_ms"] == 4e-6
    assert not written[2]["ok"] and errors == {"bad_sse": 1}
    assert failures == [] and rec.error is None


def test_a_failed_write_is_reported_and_nothing_after_it_is_written() -> None:
    written: list[str] = []
    failures: list[BaseException] = []

    def sink(r: dict[str, Any]) -> None:
        if r["request_id"] == "b":
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(r["request_id"])

    rec = Recorder(CLOCK, count_text, sink, Counter(), failures.append)
    rec.start()
    for rid in "abc":
        rec.put(attempt(rid, [(5, DONE)]))
    rec.close()
    assert written == ["a"]
    assert len(failures) == 1 and failures[0] is rec.error
    assert isinstance(rec.error, OSError) and rec.error.errno == errno.ENOSPC
