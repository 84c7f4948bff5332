"""Server-sent events framing, with each event stamped when its first byte arrived.

The client only appends ``(arrival_ns, bytes)`` while a stream is open, so the time
between a chunk's arrival and its stamp is one ``await`` and no parsing. Afterwards,
:func:`split_events` frames the bytes into events (WHATWG SSE rules: lines end in CRLF,
LF or CR; a blank line ends an event; ``data:`` lines join with LF; ``:`` lines are
comments; an event with no data is no event) and gives each the stamp of the chunk
holding its first field line's first byte, the index of that chunk (``read``) and
whether it is the last event to begin in that chunk (``last``: no other event's bytes
follow it there, so a kernel stamp, the arrival of the read's last segment, is its own).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

# a blank line: two line ends; atomic groups keep a CRLF from splitting into CR + LF
_EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")
_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs twice as much
class Event:
    t_ns: int  # arrival of the event's first byte (monotonic ns)
    data: str  # the joined data lines
    event: str | None = None  # the `event:` field, if any
    # how it was delivered (not what it says, so equality ignores them):
    read: int = field(default=0, compare=False)  # the chunk holding its first byte
    last: bool = field(default=True, compare=False)  # no other event's bytes follow in it


def _fields(block: bytes) -> tuple[int, list[bytes], bytes | None]:
    """Offset of the first field line in ``block``, its data lines and event type."""
    data: list[bytes] = []
    kind: bytes | None = None
    first = -1
    start = 0
    for m in _LINE_END.finditer(block + b"\n"):
        line = block[start : m.start()]
        line_start, start = start, m.end()
        name, sep, value = line.partition(b":")
        if not name:  # comment (or empty) line
            continue
        if first < 0:
            first = line_start
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            kind = value
    return max(first, 0), data, kind


def split_events(chunks: Sequence[tuple[int, bytes]]) -> tuple[list[Event], bytes]:
    """Events of a stream received as stamped chunks, and any trailing partial event."""
    if not chunks:
        return [], b""
    buf = b"".join(c for _, c in chunks) if len(chunks) > 1 else chunks[0][1]
    starts = []  # byte offset where each chunk begins
    pos = 0
    for _, c in chunks:
        starts.append(pos)
        pos += len(c)
    stamps = [t for t, _ in chunks]
    events: list[Event] = []
    starts.append(len(buf))  # the end of the last chunk
    if b"\r" in buf:
        # CR or CRLF line ends: the general splitter (offsets stay exact, separators vary)
        pos = 0
        for m in _EVENT_END.finditer(buf):
            # m.end(): where the next block (or a partial tail) begins
            _add_event(events, buf[pos : m.start()], pos, m.end(), starts, stamps)
            pos = m.end()
        return events, buf[pos:]
    # LF line ends (the usual stream): blocks are "\n\n" apart and most are one data line,
    # so the chunk of each block is found by walking the chunks, not by a search
    parts = buf.split(b"\n\n")
    tail = parts.pop()
    i, pos, end_i = 0, 0, starts[1]
    for part in parts:
        nxt = pos + len(part) + 2  # where the next block (or the partial tail) begins
        if part[:5] == b"data:" and b"\n" not in part:
            while pos >= end_i:
                i += 1
                end_i = starts[i + 1]
            value = part[6:] if part[5:6] == b" " else part[5:]
            events.append(Event(stamps[i], value.decode("utf-8", "replace"), None, i, nxt >= end_i))
        else:
            _add_event(events, part, pos, nxt, starts, stamps)
        pos = nxt
    return events, tail


def _add_event(
    events: list[Event], block: bytes, offset: int, nxt: int, starts: list[int], stamps: list[int]
) -> None:
    """Append the event of ``block`` (at ``offset``; the next bytes at ``nxt``), if it has
    data, stamped with the chunk holding its first field line's first byte."""
    first, data, kind = _fields(block)
    if data:
        i = bisect_right(starts, offset + first) - 1
        events.append(
            Event(
                stamps[i],
                b"\n".join(data).decode("utf-8", "replace"),
                kind.decode("utf-8", "replace") if kind else None,
                i,
                nxt >= starts[i + 1],
            )
        )
