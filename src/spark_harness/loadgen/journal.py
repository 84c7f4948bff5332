"""A point's request journal: ``requests.jsonl.part``, one line per finished request.

The load generator's recorder process (:mod:`.recorder`) writes it as requests finish,
so a point that dies keeps every request it finished. :class:`Journal` is what the
caller of ``run_load`` holds: where the journal is and how many records, per phase, are
on disk so far. :class:`JournalFile` is the writing side.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

#: msgspec's JSON encoder: a record with a reply's 128 event offsets in a fifteenth of
#: ``json.dumps``'s time (3.6 µs against 56; the recorder's largest cost after
#: decoding). A non-finite number (a server's NaN in its usage) is written ``null``:
#: missing, never a value
_encode = msgspec.json.Encoder().encode

#: per phase: records written and how many of them failed
Counts = dict[str, dict[str, int]]


def count(counts: Counts, phase: str, ok: bool) -> None:
    """Count one record of ``phase``."""
    merge(counts, {phase: {"requests": 1, "errors": 0 if ok else 1}})


def merge(counts: Counts, more: Counts) -> None:
    """Add the counts ``more`` to ``counts``."""
    for phase, c in more.items():
        mine = counts.setdefault(phase, {"requests": 0, "errors": 0})
        mine["requests"] += c["requests"]
        mine["errors"] += c["errors"]


@dataclass
class Journal:
    """Where ``run_load`` journals its records, and what it has written so far."""

    path: Path
    #: per phase: records on disk and failed records among them (kept current by the run)
    counts: Counts = field(default_factory=dict)


class JournalFile:
    """Appends records to a journal file.

    One unbuffered write per record: a record is on disk once the call returns, and a
    write that fails (a full disk) is cut back to the last complete line, so the file
    never holds a torn record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._size = 0  # bytes of complete lines
        # a torn line can be cut off a file (not off a device such as /dev/full)
        self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)

    def write(self, rec: dict[str, Any]) -> None:
        assert self._fd is not None, "record after close"
        line = _line(rec)
        try:
            if os.write(self._fd, line) != len(line):  # a short write: the disk is full
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        except OSError:
            if self._regular:
                os.ftruncate(self._fd, self._size)
                os.lseek(self._fd, self._size, os.SEEK_SET)
            raise
        self._size += len(line)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if self._regular:
                    os.fsync(fd)
            finally:
                os.close(fd)


def _line(rec: dict[str, Any]) -> bytes:
    """``rec`` as one JSON line. A string UTF-8 cannot hold (a lone surrogate a server's
    ``\\ud800`` escape decoded to) goes through ``json``, which escapes it."""
    try:
        return _encode(rec) + b"\n"
    except UnicodeEncodeError:
        return (json.dumps(rec, separators=(",", ":")) + "\n").encode()
