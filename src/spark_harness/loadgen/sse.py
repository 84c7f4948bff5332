"""Server-sent events framing, with each event stamped when its first byte arrived.

The client only appends ``(arrival_ns, bytes)`` while a stream is open, so the time
between a chunk's arrival and its stamp is one ``await`` and no parsing. Afterwards,
:func:`split_events` frames the bytes into events (WHATWG SSE rules: lines end in CRLF,
LF or CR; a blank line ends an event; ``data:`` lines join with LF; ``:`` lines are
comments) and gives each the stamp of the chunk holding its first byte.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

_LINE = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class Event:
    t_ns: int  # arrival of the event's first byte (monotonic ns)
    data: str  # the joined data lines
    event: str | None = None  # the `event:` field, if any


def split_events(chunks: Sequence[tuple[int, bytes]]) -> tuple[list[Event], bytes]:
    """Events of a stream received as stamped chunks, and any trailing partial event.

    Events with no data lines (comments, keep-alives) are dropped, as the standard says.
    """
    if not chunks:
        return [], b""
    buf = b"".join(c for _, c in chunks)
    starts = []  # byte offset where each chunk begins
    pos = 0
    for _, c in chunks:
        starts.append(pos)
        pos += len(c)
    stamps = [t for t, _ in chunks]
    events: list[Event] = []
    data: list[bytes] = []
    kind: bytes | None = None
    event_start = 0  # offset of the current event's first byte
    line_start = 0
    for m in _LINE.finditer(buf):
        line = buf[line_start : m.start()]
        if not line:  # blank line: dispatch
            if data:
                t = stamps[bisect_right(starts, event_start) - 1]
                events.append(
                    Event(
                        t,
                        b"\n".join(data).decode("utf-8", "replace"),
                        kind.decode("utf-8", "replace") if kind else None,
                    )
                )
            data, kind = [], None
            event_start = m.end()
        else:
            field, sep, value = line.partition(b":")
            if sep and value.startswith(b" "):
                value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                kind = value
            elif not field and not data and kind is None:
                event_start = m.end()  # a comment before any field: the event starts later
        line_start = m.end()
    return events, buf[event_start:]
