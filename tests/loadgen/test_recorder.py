"""The recorder process: records built away from the loop, journaled in finishing order,
counts and failures reported back."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from spark_harness.clock import Clock
from spark_harness.loadgen.journal import Journal
from spark_harness.loadgen.record import Attempt
from spark_harness.loadgen.recorder import SWITCH_INTERVAL_S, Recorder, RecorderExited
from spark_harness.serving.process import pid_alive
from spark_harness.workloads.counting import SimCounter

CLOCK = Clock(wall_ns=1_000_000_000_000, mono_ns=0)
DONE = b'data: {"choices":[{"text":"hi"}]}\n\ndata: [DONE]\n\n'


def attempt(rid: str, chunks: list[tuple[int, bytes]], phase: str = "load") -> Attempt:
    return Attempt(request_id=rid, phase=phase, ready_ns=0, sent_ns=1, end_ns=9, chunks=chunks)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_records_are_built_in_the_process_in_finishing_order(tmp_path) -> None:
    journal = Journal(tmp_path / "requests.jsonl")
    failures: list[BaseException] = []
    errors: Counter[str] = Counter()
    switch = sys.getswitchinterval()
    rec = Recorder(CLOCK, SimCounter(), journal, errors, failures.append)
    rec.start()
    assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    rec.put(attempt("a", [(5, DONE)], phase="warmup"))
    rec.put({"request_id": "b", "phase": "load", "ok": True})  # built by the loop itself
    rec.put(attempt("c", []))  # an empty body: a bad_sse record
    rec.close()
    assert sys.getswitchinterval() == switch
    written = lines(journal.path)
    assert [r["request_id"] for r in written] == ["a", "b", "c"]
    assert written[0]["ok"] and written[0]["ttft_ms"] == 4e-6
    assert not written[2]["ok"] and written[2]["error_kind"] == "bad_sse"
    # what the process wrote is what the load generator counts
    assert journal.counts == {
        "warmup": {"requests": 1, "errors": 0},
        "load": {"requests": 2, "errors": 1},
    }
    assert errors == {"bad_sse": 1}
    assert rec.streams == 2  # attempts built in the process (the loop's record is not one)
    assert failures == [] and rec.error is None
    assert rec._proc is not None and rec._proc.returncode == 0


def test_records_are_journaled_while_the_run_lasts(tmp_path) -> None:
    journal = Journal(tmp_path / "requests.jsonl")
    rec = Recorder(CLOCK, SimCounter(), journal, Counter(), lambda e: None)
    rec.start()
    try:
        rec.put(attempt("a", [(5, DONE)]))
        deadline = time.monotonic() + 10
        while not journal.counts and time.monotonic() < deadline:
            time.sleep(0.02)
        # on disk before the run ends: a point killed now keeps it
        assert [r["request_id"] for r in lines(journal.path)] == ["a"]
        assert journal.counts == {"load": {"requests": 1, "errors": 0}}
    finally:
        rec.close()


def test_a_failed_write_is_reported_and_nothing_after_it_is_written(tmp_path) -> None:
    journal = Journal(Path("/dev/full"))  # every write fails with ENOSPC
    failures: list[BaseException] = []
    rec = Recorder(CLOCK, SimCounter(), journal, Counter(), failures.append)
    rec.start()
    for rid in "abc":
        rec.put(attempt(rid, [(5, DONE)]))
    rec.close()
    assert len(failures) == 1 and failures[0] is rec.error
    assert isinstance(rec.error, OSError) and rec.error.errno == errno.ENOSPC
    assert journal.counts == {}


def test_a_recorder_process_that_dies_stops_the_run(tmp_path) -> None:
    journal = Journal(tmp_path / "requests.jsonl")
    failures: list[BaseException] = []
    rec = Recorder(CLOCK, SimCounter(), journal, Counter(), failures.append)
    rec.start()
    assert rec._proc is not None
    rec._proc.kill()
    rec._proc.wait()
    rec.put(attempt("a", [(5, DONE)]))
    deadline = time.monotonic() + 10
    while not failures and time.monotonic() < deadline:
        time.sleep(0.02)
    rec.close()
    assert len(failures) == 1 and isinstance(failures[0], RecorderExited)
    assert "exited" in str(failures[0])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_leaves_the_process_to_finish_what_it_was_sent(tmp_path, sig) -> None:
    journal = Journal(tmp_path / "requests.jsonl")
    rec = Recorder(CLOCK, SimCounter(), journal, Counter(), lambda e: None)
    rec.start()
    assert rec._proc is not None
    time.sleep(0.5)  # past its start-up: the signal finds its handler in place
    os.kill(rec._proc.pid, sig)  # as Ctrl-C or Snakemake's SIGTERM reaches the group
    rec.put(attempt("a", [(5, DONE)]))
    rec.close()
    assert [r["request_id"] for r in lines(journal.path)] == ["a"]
    assert rec._proc.returncode == 0


KILLED_LOAD_GENERATOR = """
import os, signal, sys, time
from collections import Counter
from pathlib import Path
import pytest

from spark_harness.clock import Clock
from spark_harness.loadgen.journal import Journal
from spark_harness.loadgen.record import Attempt
from spark_harness.loadgen.recorder import Recorder
from spark_harness.workloads.counting import SimCounter

rec = Recorder(Clock(), SimCounter(), Journal(Path(sys.argv[1])), Counter(), print)
rec.start()
rec.put(Attempt(request_id="a", phase="load", ready_ns=0, sent_ns=1, end_ns=9,
                chunks=[(5, b'data: {"choices":[{"text":"hi"}]}\\n\\ndata: [DONE]\\n\\n')]))
time.sleep(0.5)  # piped to the recorder process
print(rec._proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_process_exits_when_the_load_generator_is_killed(tmp_path) -> None:
    path = tmp_path / "requests.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", KILLED_LOAD_GENERATOR, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)  # no orphan
    assert [r["request_id"] for r in lines(path)] == ["a"]  # what it was sent is kept


def test_a_record_that_cannot_be_built_stops_the_run(tmp_path) -> None:
    journal = Journal(tmp_path / "requests.jsonl")
    failures: list[BaseException] = []
    rec = Recorder(CLOCK, SimCounter(), journal, Counter(), failures.append)
    rec.start()
    rec.put(attempt("a", [(5, DONE)]))
    rec.put(attempt("b", [(5, "text, not bytes")]))  # type: ignore[list-item]  # a bug's data
    rec.put(attempt("c", [(5, DONE)]))
    rec.close()
    assert len(failures) == 1 and isinstance(failures[0], TypeError)
    assert [r["request_id"] for r in lines(journal.path)] == ["a"]  # none after it
