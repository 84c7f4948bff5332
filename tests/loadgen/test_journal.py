"""The journal file: whole lines only, on a file or a device; counts per phase."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from spark_harness.loadgen.journal import JournalFile, count, merge


def test_records_are_lines_on_disk_as_soon_as_written(tmp_path) -> None:
    journal = JournalFile(tmp_path / "sub" / "requests.jsonl.part")
    journal.write({"request_id": "a", "phase": "load", "ok": True})
    # on disk before close: a point killed now keeps it
    assert json.loads(journal.path.read_text()) == {"request_id": "a", "phase": "load", "ok": True}
    journal.close()
    journal.close()  # twice is harmless


def test_records_a_hostile_server_shaped_are_written_whole(tmp_path) -> None:
    """A lone surrogate (a server's ``\\ud800`` escape, decoded) cannot be UTF-8: that
    record goes through ``json``, escaped; a non-finite number is written null (missing).
    Every line stays one JSON value."""
    journal = JournalFile(tmp_path / "requests.jsonl.part")
    journal.write({"request_id": "a", "error": "bad \ud800 text"})
    journal.write({"request_id": "b", "kv_g3_fetch_ms": float("nan"), "error": "é"})
    journal.close()
    a, b = (json.loads(line) for line in journal.path.read_text().splitlines())
    assert a == {"request_id": "a", "error": "bad \ud800 text"}
    assert b == {"request_id": "b", "kv_g3_fetch_ms": None, "error": "é"}


def test_a_full_device_raises_enospc_and_is_not_truncated() -> None:
    journal = JournalFile(Path("/dev/full"))  # a device: nothing to cut back
    with pytest.raises(OSError) as failed:
        journal.write({"request_id": "a"})
    assert failed.value.errno == errno.ENOSPC
    journal.close()


def test_counts_per_phase_add_up() -> None:
    counts: dict[str, dict[str, int]] = {}
    count(counts, "load", ok=True)
    count(counts, "load", ok=False)
    count(counts, "warmup", ok=True)
    total = {"load": {"requests": 5, "errors": 1}}
    merge(total, counts)
    assert total == {"load": {"requests": 7, "errors": 2}, "warmup": {"requests": 1, "errors": 0}}
