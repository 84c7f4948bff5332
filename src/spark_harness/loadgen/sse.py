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


@dataclass(frozen=True, slots=True)
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
    if b"\r" in buf:
        # CR or CRLF line ends: the general splitter (offsets stay exact, separators vary)
        bounds, pos = [], 0
        for m in _EVENT_END.finditer(buf):
            bounds.append((pos, buf[pos : m.start()]))
            pos = m.end()
        tail = buf[pos:]
    else:
        parts = buf.split(b"\n\n")
        tail = parts.pop()
        bounds, pos = [], 0
        for part in parts:
            bounds.append((pos, part))
            pos += len(part) + 2
    starts.append(len(buf))  # the end of the last chunk
    # where the bytes after each block begin (the next block, or a partial tail)
    after = [o for o, _ in bounds[1:]] + [len(buf) - len(tail) if tail else len(buf)]
    for (offset, block), nxt in zip(bounds, after, strict=True):
        if block.startswith(b"data:") and b"\n" not in block and b"\r" not in block:
            value = block[6:] if block[5:6] == b" " else block[5:]  # the common case
            i = bisect_right(starts, offset) - 1
            text = value.decode("utf-8", "replace")
            events.append(Event(stamps[i], text, None, i, nxt >= starts[i + 1]))
            continue
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
    return events, tail
