"""A lean HTTP/1.1 client connection for streamed completions, parsed by httptools.

Why not a general client: at the loads the plan runs (hundreds of streams on a core the
client shares with its recorder), aiohttp's per-request machinery (request and response
objects, header multidicts, tracing, its stream reader fed once per HTTP chunk) cost
about 1.8 CPU-ms per request against a zero-delay server and about a millisecond of
event-loop time between a request falling due and its first byte going out. Here a
request is one pre-encoded write on a kept-alive connection, and a response is fed to
httptools' C parser (llhttp, the parser of Node.js and uvicorn) as it arrives, which
calls back only for the head, for each body piece and at the end:

- over plain HTTP each connection's socket is a :class:`.kstamp.StampedSocket`: it keeps
  every read with its kernel receive stamp, and the loop's per-read work is the parse
  (the stream's events are framed and decoded after it closes, by
  :func:`.kstamp.body_reads`
  and the recorder process);
- over TLS the socket's reads are ciphertext, so each decrypted body piece is stamped
  with the monotonic clock as the protocol receives it, bounded below by the previous
  piece's stamp (``Attempt.chunks``, ``lower_ns``).

A response is complete at the parser's end of message, or ``DONE_GRACE_S`` after
``data: [DONE]`` (a server that keeps the response open: the connection is then closed
rather than reused), or at the connection's end for a body delimited by it.

A response is bounded, so a broken server cannot exhaust the load generator's memory
(every stream's reads are kept until it ends): a head over ``MAX_HEAD_BYTES``, or a body
over ``body_limit`` of the tokens asked for (a server that ignores ``max_tokens`` and
streams on), fails the request (``other``) and closes its connection; the requests
before and after it are measured as usual.
"""

from __future__ import annotations

import asyncio
import email.utils
import socket
import ssl
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import httptools

from spark_harness.loadgen import kstamp
from spark_harness.loadgen.record import Attempt

#: After ``data: [DONE]``, how long to wait for the server to end the response before
#: taking the stream as complete (a server that keeps it open would otherwise time out).
DONE_GRACE_S = 1.0
#: how much of a failed response's body its error message keeps
ERROR_BODY_BYTES = 2048
#: the most a response's status line and headers may take
MAX_HEAD_BYTES = 64 << 10
#: a body's allowance per token asked for: an OpenAI stream event carrying one token
#: takes a few hundred bytes (a chat chunk with its ids, ~300)
BODY_BYTES_PER_TOKEN = 16 << 10
#: and at least this much (a short reply's usage event, an error body)
MIN_BODY_BYTES = 1 << 20


def body_limit(max_tokens: int | None) -> int:
    """The most a response body to a request for ``max_tokens`` tokens may take."""
    return max(MIN_BODY_BYTES, (max_tokens or 0) * BODY_BYTES_PER_TOKEN)


def retry_after_s(value: bytes | None) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds (its delta-seconds or HTTP
    date form); None when absent or unreadable."""
    if not value:
        return None
    text = value.decode("latin-1").strip()
    if text.isascii() and text.isdigit():  # ("²" is a digit to Python, not to HTTP)
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT
        return None
    return max(0.0, when.timestamp() - time.time())


class ResponseError(Exception):
    """The exchange failed: ``kind`` is the attempt's ``error_kind``; a rejection keeps
    the wait its ``Retry-After`` asked for."""

    def __init__(self, kind: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry_after_s = retry_after_s


class Connection(asyncio.Protocol):
    """One kept-alive connection: one request at a time (no pipelining)."""

    def __init__(self, sock: kstamp.StampedSocket | None) -> None:
        #: plain HTTP: the socket that keeps every read with its stamp (None over TLS)
        self.sock = sock
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = 0  # bytes of the current exchange's response so far
        self.lost_ns: int | None = None  # when the connection was lost (monotonic)
        self._parser = httptools.HttpResponseParser(self)
        self._att: Attempt | None = None
        self._done: asyncio.Future[None] | None = None
        self._headers: dict[bytes, bytes] = {}
        self._keep_alive = False
        self._complete = False  # the parser saw the end of the current response
        self._status = 0
        self._error_body = b""
        self._body_bytes = 0
        self._body_limit = MIN_BODY_BYTES
        self._head_bytes = 0  # fed while the head is incomplete
        self._head_done = False
        self._prev_ns = 0  # TLS: the previous piece's stamp, the next one's lower bound
        self._to_eof = False  # a body delimited by the connection's end

    # --- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._att is None:
            self.close()  # bytes nobody asked for: the connection is not in a known state
            return
        self.received += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(ResponseError("other", f"malformed HTTP response: {e}"))
            return
        if not self._head_done:  # still in the head after these bytes
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._fail(ResponseError("other", f"response head over {MAX_HEAD_BYTES} bytes"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost_ns = time.monotonic_ns()
        if self._done is None or self._done.done():
            return
        if self._to_eof and exc is None:
            self._done.set_result(None)  # the body ran to the connection's end
            return
        reason = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
        self._fail(ResponseError("reset", f"connection lost after {self._received()}: {reason}"))

    # --- httptools callbacks ----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self._head_done = True
        att, h = self._att, self._headers
        assert att is not None
        self._status = att.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        chunked = h.get(b"transfer-encoding", b"").lower() == b"chunked"
        self._to_eof = not chunked and b"content-length" not in h
        if self._status != 200:
            return
        ctype = h.get(b"content-type", b"").decode("latin-1")
        if not ctype.startswith("text/event-stream"):
            got = ctype or "no Content-Type"
            self._fail(ResponseError("bad_sse", f"expected text/event-stream, got {got}"))
        elif h.get(b"content-encoding", b"identity").lower() != b"identity":
            self._fail(ResponseError("other", "a compressed body (none was asked for)"))
        else:  # an event stream: over plain HTTP the socket's reads carry it and its stamps
            att.whole_body = self.sock is not None

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self._body_limit:
            self._fail(
                ResponseError(
                    "other",
                    f"response body over {self._body_limit} bytes, the most allowed for the "
                    "tokens asked (a server that ignores max_tokens?)",
                )
            )
            return
        if self._status != 200:
            if len(self._error_body) < ERROR_BODY_BYTES:
                self._error_body += body
        elif self.sock is None:
            att = self._att
            assert att is not None
            t = time.monotonic_ns()
            att.chunks.append((t, body))
            att.lower_ns.append(self._prev_ns)
            self._prev_ns = t
            if kstamp.has_done_event(body):
                self._stream_done()

    def on_message_complete(self) -> None:
        self._complete = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    # --- the exchange -----------------------------------------------------------------

    async def exchange(self, data: bytes, att: Attempt, max_body_bytes: int) -> None:
        """Send one request and wait for its response's end; fill ``att``. Raises
        :class:`ResponseError`; the connection is left reusable only after a complete,
        kept-alive response."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._att, self._done = att, loop.create_future()
        self._headers, self._status, self._error_body, self._body_bytes = {}, 0, b"", 0
        self._body_limit, self._head_bytes, self.received = max_body_bytes, 0, 0
        self._keep_alive = self._complete = self._to_eof = self._head_done = False
        att.sent_ns = self._prev_ns = time.monotonic_ns()
        try:
            self.transport.write(data)
            att.sent_done_ns = time.monotonic_ns()
            if self.sock is not None:  # (the send started a new response: set it after)
                self.sock.on_done = self._stream_done
            await self._done
        finally:
            self._att, self._done = None, None
            att.body_bytes = self._body_bytes
            if self.sock is not None:
                self.sock.on_done = None
                att.captured, att.socket_sent_ns = self.sock.take(), self.sock.sent_ns
            # reused only after a response that ended as HTTP says and may be followed:
            # not after the [DONE] grace, a failure or a cancellation
            if not (self._complete and self._keep_alive):
                self.close()
        if self._status != 200:
            text = self._error_body.decode("utf-8", "replace").strip()
            if self._status in (429, 503):
                wait = retry_after_s(self._headers.get(b"retry-after"))
                raise ResponseError("rejected", f"HTTP {self._status}: {text[:300]}", wait)
            raise ResponseError("http", f"HTTP {self._status}: {text[:300]}")

    def _stream_done(self) -> None:
        """``data: [DONE]`` arrived: the stream is over; give the server
        ``DONE_GRACE_S`` to end the response."""
        done = self._done
        if done is None or done.done():
            return
        loop = asyncio.get_running_loop()
        loop.call_later(DONE_GRACE_S, self._grace_over, done)

    def _grace_over(self, done: asyncio.Future[None]) -> None:
        if not done.done():  # the response never ended: the connection is closed after it
            done.set_result(None)

    def _fail(self, err: ResponseError) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(err)
        self.close()

    def _received(self) -> str:
        if self.sock is not None:
            return f"{len(self.sock.capture)} socket reads"
        return f"{len(self._att.chunks) if self._att else 0} chunks"

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


async def open_connection(
    addresses: Sequence[tuple[Any, ...]], tls: ssl.SSLContext | None, host: str
) -> Connection:
    """A connection to the first of ``addresses`` (getaddrinfo rows) that accepts.
    Raises OSError (the last address's) when none does."""
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for family, type_, proto, _, addr in addresses:
        stamped = None if tls else kstamp.StampedSocket(family, type_, proto)
        sock = socket.socket(family, type_, proto) if stamped is None else stamped
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
            _, conn = await loop.create_connection(
                partial(Connection, stamped),
                sock=sock,
                ssl=tls,
                server_hostname=host if tls else None,
            )
            return conn
        except OSError as e:
            sock.close()
            last = e
        except BaseException:
            sock.close()
            raise
    raise last or OSError(f"no address to connect to for {host}")
