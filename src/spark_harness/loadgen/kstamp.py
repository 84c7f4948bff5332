"""Kernel receive timestamps for streamed responses (Linux ``SO_TIMESTAMPNS``).

Stamping a chunk when the client's event loop hands it over includes the client's own
delays: waking the process, other callbacks, other streams' work. The kernel stamps
each received packet as it arrives; reading those stamps removes the client's
scheduling from the measurement. How:

- each plain-HTTP connection of the client (:mod:`.http1`) is a :class:`StampedSocket`;
  asyncio's transport reads it with ``recv``, which here uses ``recvmsg`` and keeps
  each read's bytes with the kernel's stamp (converted to the monotonic clock) and the
  read's *lower bound*: the start of the socket's previous read, or the send of the
  request for its first read (what this read returns was not there yet); a previous
  read that filled its buffer may have left bytes that had already arrived, so the
  read after it keeps its lower bound;
- the kernel's stamps are wall-clock time, moved onto the monotonic clock with the
  offset between the two measured at the read: a step of the wall clock (a time
  daemon correcting it) between a packet's arrival and its read shifts that read's
  stamp by the step, and a stamp moved outside its read's bounds is replaced by the
  read's own time;
- Linux stamps a TCP read with the arrival of the *last* segment it returns (each
  segment read overwrites the stamp, and segments that wait in the receive queue are
  coalesced under the newest stamp), so the stamp is exact for every byte of a read
  that holds one segment and an upper bound for the others: a read's bytes arrived
  within ``[lower bound, stamp]``. A read that is on time holds one server write; a late
  read (the client was busy, or its loop waited out its poll gap, :mod:`.eventloop`)
  may hold several, and then only the bound is known (the record keeps it:
  ``first_token_bound_ms``). A kernel stamp older than the read's lower
  bound is stale and replaced by the read's own time;
- the kernel turns receive stamping on through deferred work, so the first reads
  after a process's first stamped socket may carry no kernel stamp: those keep the
  read's own time, late, never early;
- a send on the socket starts a new capture (HTTP/1.1 without pipelining: what arrives
  next is that request's response) and stamps the request's first send (``sent_ns``,
  just before the system call: later than the client's own stamp by whatever delayed
  it in between);
- after a response, :func:`body_reads` decodes the captured raw HTTP/1.1 bytes (head,
  then the body: chunked, sized or delimited by the connection's end) with httptools
  into one ``(stamp, lower bound, payload piece, kernel)`` per read;
- a read that holds ``data: [DONE]`` marks the response's stream as ended
  (``done_seen``, ``on_done``): the client, which then waits for the response's end
  without reading each event, gives a server that keeps the response open a grace
  period from there;
- the record uses them only when their payload holds as many bytes as the client's
  parser counted (:mod:`.record`); otherwise it is an error, never a record with every
  event stamped at the end. On a platform without the option the reads keep their own
  time, and their bound says so.
"""

from __future__ import annotations

import re
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import httptools

# Linux values; Python does not export these constants
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
#: whether this platform gives TCP reads the kernel's receive stamps
KERNEL_STAMPS = sys.platform == "linux" and bool(_ANC_SIZE)

#: the most one read asks for. asyncio's transport asks for 256 KiB, and a buffer that
#: size costs CPython a fresh allocation above the allocator's mmap threshold per call:
#: a 150-byte loopback send and read took 31 µs with it, 10 µs at 64 KiB, on the
#: development VM (a streamed event is a few hundred bytes; a larger backlog is read in
#: more than one read, each stamped)
RECV_BYTES = 64 << 10

#: the event that ends an OpenAI stream, in a read: ``data:``, the optional space SSE
#: allows, ``[DONE]`` and a line end (LF, CRLF or CR, as SSE allows), which a JSON
#: string in another event (a reply that quotes the marker) cannot hold unescaped. A
#: marker split across two reads goes unseen: the reader then waits for the response's
#: end, as for a server that sends no marker
_DONE_EVENT = re.compile(rb"data: ?\[DONE\][\r\n]")

#: one read: (arrival stamp, lower bound, bytes, whether the stamp is the kernel's: for a
#: body piece, the kernel's and its last byte's own, see :meth:`_BodyPieces.read_fed`)
Read = tuple[int, int, bytes, bool]

#: how long a measured wall - monotonic offset is reused (NTP slews the wall clock by at
#: most 0.5 ms per second: well under a microsecond in this time)
OFFSET_REUSE_NS = 1_000_000
#: a measurement whose two monotonic reads are further apart than this was interrupted
OFFSET_TIGHT_NS = 20_000
_offset = [0, -OFFSET_REUSE_NS]  # (wall - monotonic, when measured)


def has_done_event(data: bytes) -> bool:
    """Whether ``data`` holds the ``data: [DONE]`` event that ends an OpenAI stream."""
    return _DONE_EVENT.search(data) is not None


def wall_offset_ns(now: int) -> int:
    """Wall clock minus monotonic clock, in ns, as of monotonic ``now`` (measured at most
    :data:`OFFSET_REUSE_NS` before)."""
    if now - _offset[1] < OFFSET_REUSE_NS:
        return _offset[0]
    _offset[0], _offset[1] = measure_wall_offset_ns(), now
    return _offset[0]


def measure_wall_offset_ns() -> int:
    """Wall clock minus monotonic clock, in ns, read between two monotonic reads, retried
    while they are far apart: a thread that lost the processor (or the interpreter lock)
    between the two clocks would shift every stamp it moves."""
    best = (1 << 62, 0)
    for _ in range(8):
        m1 = time.monotonic_ns()
        wall = time.time_ns()
        m2 = time.monotonic_ns()
        best = min(best, (m2 - m1, wall - (m1 + m2) // 2))
        if best[0] <= OFFSET_TIGHT_NS:
            break
    return best[1]


class StampedSocket(socket.socket):
    """A socket that keeps what each ``recv`` returned and the bounds of its arrival."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: per read: (arrival stamp, lower bound, bytes, stamp is the kernel's), monotonic ns
        self.capture: list[Read] = []
        self._lower_ns = 0  # start of the previous read, or of the last send
        #: when the current request's first byte went to the kernel (the first send
        #: after a read): the client's own delays before it are not server time
        self.sent_ns: int | None = None
        self._answered = True  # a read since the last send: the next send is a new request
        #: the current response's stream has ended (a read held ``data: [DONE]``), and
        #: who to tell (:mod:`.client` waits for the response's end without reading
        #: each event, and gives a server that keeps it open a grace period from here)
        self.done_seen = False
        self.on_done: Callable[[], None] | None = None
        self.kernel = False
        if KERNEL_STAMPS:
            try:
                self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self.kernel = True
            except OSError:
                pass

    def _sending(self) -> None:
        self._lower_ns = time.monotonic_ns()
        if self._answered:
            # a new request (the first send since a read): what arrives next is its
            # response (a new list: the previous response's reader may still hold the
            # old one); the rest of a body the kernel took in parts changes nothing
            self.capture = []
            self.done_seen, self.on_done = False, None
            self.sent_ns, self._answered = self._lower_ns, False

    def send(self, data: Any, flags: int = 0) -> int:
        self._sending()
        return super().send(data, flags)

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        self._sending()
        return super().sendmsg(*args, **kwargs)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        bufsize = min(bufsize, RECV_BYTES)
        start = time.monotonic_ns()
        kernel_stamped = False
        if not self.kernel:
            data = super().recv(bufsize, flags)
            stamp = time.monotonic_ns()
        else:
            data, ancdata, _, _ = self.recvmsg(bufsize, _ANC_SIZE, flags)
            now = stamp = time.monotonic_ns()
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
                    # kernel stamps are wall-clock: move them onto the monotonic clock
                    kernel = sec * 1_000_000_000 + nsec - wall_offset_ns(now)
                    if self._lower_ns <= kernel <= now:  # else stale: keep the read's time
                        stamp, kernel_stamped = kernel, True
        if data:
            self.capture.append((stamp, self._lower_ns, data, kernel_stamped))
            self._answered = True
            if not self.done_seen and has_done_event(data):
                self.done_seen = True
                if self.on_done is not None:
                    self.on_done()
        if len(data) < bufsize:
            # the read emptied the receive queue: what the next one returns arrived after
            # this one began. A full read may have left bytes that were already there, so
            # the next read keeps this one's lower bound
            self._lower_ns = start
        return data

    def take(self) -> list[Read]:
        """What was received since the last take."""
        out, self.capture = self.capture, []
        return out


#: what may follow a read's last payload byte in that read without arriving after it:
#: the chunk's line end, and the stream's last chunk (a server writes them with the payload)
_CHUNK_TAIL = b"\r\n0\r\n\r\n"


class _BodyPieces:
    """httptools callbacks that give each body piece the read it came in."""

    def __init__(self) -> None:
        self.out: list[Read] = []
        self.read: Read = (0, 0, b"", False)  # the read being fed
        self.parts: list[bytes] = []  # the body pieces httptools gave from it so far
        self.head_seen = False

    def on_headers_complete(self) -> None:
        self.head_seen = True

    def on_body(self, piece: bytes) -> None:
        self.parts.append(piece)  # once per HTTP chunk: joined per read in read_fed

    def read_fed(self) -> None:
        """After a read: its body pieces as one piece. Its kernel stamp is the arrival of
        its last segment, the last payload byte's own only if no later bytes follow that
        byte in the read. A server that writes the next chunk's size line apart from its
        payload (or anything else after the payload) leaves the piece's stamp an upper
        bound, as for a late read."""
        parts = self.parts
        if not parts:
            return
        self.parts = []
        stamp, lower, raw, kernel = self.read
        if kernel:
            end = raw.rfind(parts[-1]) + len(parts[-1])
            kernel = _CHUNK_TAIL.startswith(raw[end:])
        self.out.append((stamp, lower, parts[0] if len(parts) == 1 else b"".join(parts), kernel))


def body_reads(capture: Sequence[Read]) -> list[Read] | None:
    """The body of one captured HTTP/1.1 response (chunked, sized or delimited by the
    connection's end), one ``(stamp, lower bound, payload piece, kernel)`` per read that
    carried body bytes; None if the capture is not a response whose head is complete. A
    response cut short keeps the part that arrived."""
    pieces = _BodyPieces()
    parser = httptools.HttpResponseParser(pieces)
    try:
        for pieces.read in capture:
            parser.feed_data(pieces.read[2])
            pieces.read_fed()
    except httptools.HttpParserError:
        return None
    return pieces.out if pieces.head_seen else None
