"""Kernel receive timestamps for streamed responses (Linux ``SO_TIMESTAMPNS``).

Stamping a chunk when the client's event loop hands it over includes the client's own
delays: waking the process, other callbacks, other streams' work. The kernel stamps
each received packet as it arrives; reading those stamps removes the client's
scheduling from the measurement. How:

- the connector creates :class:`StampedSocket` objects (aiohttp's ``socket_factory``);
  asyncio's transport reads them with ``recv``, which here uses ``recvmsg`` and keeps
  each read's bytes with two stamps: the kernel's (converted to the monotonic clock)
  and the read's own;
- the kernel stamps a read with the arrival of its *first* packet (later packets that
  arrived before the read are merged into it), so only the read's first byte gets the
  kernel stamp and its other bytes the read's own stamp: late, never early. A kernel
  stamp older than the start of the socket's previous read is stale (the kernel merged
  new data into an old buffer) and is replaced by the read's own;
- the kernel turns receive stamping on through deferred work, so the first reads
  after a process's first stamped socket may carry no kernel stamp (or the read's
  time): those keep the read's own stamp, again late, never early;
- a send on the socket starts a new capture (HTTP/1.1 without pipelining: what arrives
  next is that request's response) and hands the socket to the request that is being
  sent, through the :data:`sending` context variable: aiohttp may release a connection
  as soon as a short response is complete, before the client could look at it;
- after a response, :func:`dechunk` decodes the captured raw HTTP/1.1 bytes (head, then
  chunked body) into ``(stamp, payload piece)`` pairs: the same form as the loop-stamped
  chunks;
- the client uses them only when their payload equals, byte for byte, what aiohttp
  delivered; otherwise (another event loop such as uvloop that bypasses ``recv``, an
  encoding other than chunked, a platform without the option) it keeps the loop stamps.
"""

from __future__ import annotations

import contextvars
import socket
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

# Linux values; Python does not export these constants
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0

#: set by the client around one request: the socket that sends it appends itself
sending: contextvars.ContextVar[list[StampedSocket] | None] = contextvars.ContextVar(
    "kstamp_sending", default=None
)


class StampedSocket(socket.socket):
    """A socket that keeps what each ``recv`` returned and when the kernel received it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: per read: (stamp of its first byte, stamp of the read, bytes)
        self.capture: list[tuple[int, int, bytes]] = []
        self._last_read_start_ns = 0
        self.kernel = False
        if sys.platform == "linux" and _ANC_SIZE:
            try:
                self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.kernel = True
            except OSError:
                pass

    def _sending(self) -> None:
        self.capture = []  # a new request: what arrives next is its response
        holder = sending.get()
        if holder is not None and self not in holder:
            holder.append(self)

    def send(self, data: Any, flags: int = 0) -> int:
        self._sending()
        return super().send(data, flags)

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        self._sending()
        return super().sendmsg(*args, **kwargs)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self.kernel:
            data = super().recv(bufsize, flags)
            now = first = time.monotonic_ns()
        else:
            start = time.monotonic_ns()
            data, ancdata, _, _ = self.recvmsg(bufsize, _ANC_SIZE, flags)
            now = first = time.monotonic_ns()
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
                    # kernel stamps are wall-clock: move them onto the monotonic clock
                    kernel = sec * 1_000_000_000 + nsec - (time.time_ns() - now)
                    # data the previous read left arrived after that read began; an
                    # older stamp belongs to a buffer the kernel merged new data into
                    if self._last_read_start_ns <= kernel <= now:
                        first = kernel
            self._last_read_start_ns = start
        if data:
            self.capture.append((first, now, data))
        return data

    def take(self) -> list[tuple[int, int, bytes]]:
        """What was received since the last take."""
        out, self.capture = self.capture, []
        return out


def socket_factory(addr_info: Sequence[Any]) -> socket.socket:
    """aiohttp ``socket_factory``: a :class:`StampedSocket` for each connection."""
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    return StampedSocket(family, type_, proto)


def dechunk(capture: Sequence[tuple[int, int, bytes]]) -> list[tuple[int, bytes]] | None:
    """The payload of one captured HTTP/1.1 chunked response as ``(stamp, piece)`` pairs:
    a read's first payload byte with the read's first-byte stamp, the rest of the read's
    payload with the read's own stamp. None if the capture is not such a response."""
    raw = b"".join(d for _, _, d in capture)
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0 or b"transfer-encoding: chunked" not in raw[:head_end].lower():
        return None
    bounds = []  # end offset of each read
    pos = 0
    for _, _, d in capture:
        pos += len(d)
        bounds.append(pos)
    out: list[tuple[int, bytes]] = []
    read = 0  # index of the read holding ``start``
    started = -1  # the last read whose first payload byte was given out
    pos = head_end + 4
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            break  # the response was cut short: keep what was complete
        try:
            size = int(raw[pos:eol].split(b";", 1)[0], 16)
        except ValueError:
            return None
        if size == 0:
            break
        start, end = eol + 2, min(eol + 2 + size, len(raw))
        while start < end:
            while bounds[read] <= start:
                read += 1
            first, own, _ = capture[read]
            if started != read:  # the first payload byte of this read
                started = read
                out.append((first, raw[start : start + 1]))
                start += 1
                continue
            cut = min(end, bounds[read])
            if out and out[-1][0] == own:
                out[-1] = (own, out[-1][1] + raw[start:cut])
            else:
                out.append((own, raw[start:cut]))
            start = cut
        pos = eol + 2 + size + 2
        if pos > len(raw):
            break
    return out
