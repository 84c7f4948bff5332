"""The HTTP side of the load generator: a pool of kept-alive connections, one streamed
request at a time on each (:mod:`.http1`).

Choices that keep the numbers right (docs/REFERENCE.md, "Measuring streamed responses"):

- connections are kept alive and sized for the planned concurrency; a request is its
  head and its body, encoded once per prompt (a closed-loop user's prompt at its first
  send, in the warm-up), written in one call;
- ``sent`` is stamped just before that write, and over plain HTTP the socket's own first
  ``send`` of the request is kept beside it (:mod:`.kstamp`): waiting for a connection
  and building the request are client queueing, never server latency;
- over plain HTTP the socket keeps each raw read with its kernel receive stamp and the
  request's task does not wake per event but waits for the response's end: the
  client's scheduling and per-event work are neither in the numbers nor in the loop's
  way; over TLS each decrypted body piece is stamped as it arrives. Parsing the events
  happens after the stream closes (:mod:`.record`, in the recorder process);
- a kept-alive connection the server closed while it was idle (an idle timeout, or a
  close after a response that did not announce it) fails the next request right after
  its write, before any byte of a response: that request is sent again once on a new
  connection, as HTTP clients do, and its stamps are the new send's; one lost later
  may have been worked on and is never sent twice;
- every failure becomes the attempt's ``error_kind``/``error``: ``http`` or ``rejected``
  (429/503) with the status, ``connect``, ``reset`` (connection dropped mid-request),
  ``timeout`` (``request_timeout_s`` for the whole request, so a stalled stream ends),
  ``bad_sse`` (not an event stream), ``other`` (a malformed or compressed response, or
  one over its size bound: :func:`.http1.body_limit`).
  Nothing is raised but cancellation.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from spark_harness.contract import Endpoint
from spark_harness.loadgen import http1
from spark_harness.loadgen.record import Attempt
from spark_harness.secrets import endpoint_api_key
from spark_harness.workloads import Request

#: encoded request bodies kept for reuse (closed-loop users' prompts; a workload that
#: makes a new prompt per request fills it once and then encodes as it sends)
BODY_CACHE_ENTRIES = 4096


def api_url(base_url: str, chat: bool) -> str:
    """The completions URL under a base URL given with or without its ``/v1``."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + ("/chat/completions" if chat else "/completions")


def request_body(request: Request, model: str) -> dict[str, Any]:
    """The OpenAI request: streamed, with usage, fixed output length."""
    body: dict[str, Any] = {
        "model": request.adapter or model,
        "max_tokens": request.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }
    body["messages" if request.chat else "prompt"] = request.prompt
    return body


#: a reused connection lost this soon after the request was written, with no byte back,
#: was closed before the request reached the server (the close was already on its way:
#: loopback or one round trip); one lost later may have been working on it, and a
#: request is never sent twice for that
STALE_CONNECTION_S = 0.1


def _closed_before_it_arrived(e: http1.ResponseError, conn: http1.Connection, att: Attempt) -> bool:
    """Whether a kept-alive connection failed the request only because the server had
    already closed it: lost with no byte of a response, right after the write."""
    if e.kind != "reset" or conn.received or conn.lost_ns is None or att.sent_ns is None:
        return False
    return conn.lost_ns - att.sent_ns < STALE_CONNECTION_S * 1e9


class Client:
    """Sends requests over a pool of connections; use as ``async with Client(...)``."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connections: int,
        timeout_s: float,
        max_prompt_tokens: int | None = None,
    ) -> None:
        self.model = endpoint.model
        url = urlsplit(api_url(endpoint.base_url, chat=False))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"endpoint base_url must be an http(s) URL, got {endpoint.base_url!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._tls = ssl.create_default_context() if url.scheme == "https" else None
        # a keyed server's key, read where its endpoint says (spark_harness.secrets)
        key = endpoint_api_key(endpoint.extra)
        netloc = url.netloc.rpartition("@")[2]
        heads = {}
        for chat in (False, True):
            path = urlsplit(api_url(endpoint.base_url, chat)).path
            heads[chat] = (
                f"POST {path} HTTP/1.1\r\nHost: {netloc}\r\n"
                "Accept: text/event-stream\r\nContent-Type: application/json\r\n"
                + (f"Authorization: Bearer {key}\r\n" if key else "")
            )
        self._heads = heads
        self.connections = connections  # 0: unlimited
        self.timeout_s = timeout_s
        self.max_prompt_tokens = max_prompt_tokens
        self._slots = asyncio.Semaphore(connections) if connections else None
        self._idle: list[http1.Connection] = []
        self._open: set[http1.Connection] = set()
        self._addresses: list[tuple[Any, ...]] | None = None
        #: encoded bodies by prompt identity (the prompt is kept, so its id stays its own)
        self._bodies: dict[tuple[int, int, str | None], tuple[Any, bytes]] = {}

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self._open:
            conn.close()
        self._open.clear()
        self._idle.clear()

    def body(self, request: Request) -> bytes:
        """The encoded body of ``request``. A prompt object the workload hands out again
        (a closed-loop user's prompt) is encoded once, at its first send (the warm-up),
        so the load window does no work that grows with the prompt for it."""
        key = (id(request.prompt), request.max_tokens, request.adapter)
        hit = self._bodies.get(key)
        if hit is not None and hit[0] is request.prompt:
            return hit[1]
        payload = json.dumps(request_body(request, self.model)).encode()
        if len(self._bodies) < BODY_CACHE_ENTRIES:
            self._bodies[key] = (request.prompt, payload)
        return payload

    def _message(self, request: Request, request_id: str) -> bytes:
        payload = self.body(request)
        head = (
            f"{self._heads[request.chat]}X-Request-Id: {request_id}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        return head.encode("latin-1") + payload

    async def send(self, request: Request, att: Attempt) -> None:
        """Send ``request`` and fill ``att`` with what was observed; never raises on a
        server or network failure (cancellation still propagates)."""
        if self.max_prompt_tokens and request.prompt_tokens > self.max_prompt_tokens:
            att.error_kind = "rejected"
            att.error = (
                f"not sent: prompt of {request.prompt_tokens} tokens exceeds the engine's "
                f"max_num_tokens {self.max_prompt_tokens} (preflight)"
            )
            att.end_ns = time.monotonic_ns()
            return
        message = self._message(request, att.request_id)
        limit = http1.body_limit(request.max_tokens)
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._slots is None:
                    await self._exchange(message, att, limit)
                else:
                    async with self._slots:
                        await self._exchange(message, att, limit)
        except TimeoutError:
            got = len(att.captured or att.chunks)
            unit = "socket reads" if att.captured is not None else "chunks"
            att.error_kind = "timeout"
            att.error = f"no complete response within {self.timeout_s:g} s ({got} {unit} received)"
        except http1.ResponseError as e:
            att.error_kind, att.error, att.retry_after_s = e.kind, str(e), e.retry_after_s
        except OSError as e:  # connecting (a write's failure ends as connection_lost)
            att.error_kind, att.error = "connect", f"cannot connect: {e}"
        finally:
            att.end_ns = time.monotonic_ns()

    async def _exchange(self, message: bytes, att: Attempt, max_body_bytes: int) -> None:
        conn = self._idle_connection()
        if conn is not None:
            try:
                await self._exchange_on(conn, message, att, max_body_bytes)
                return
            except http1.ResponseError as e:
                if not _closed_before_it_arrived(e, conn, att):
                    raise
                # the server had closed this kept-alive connection (its idle timeout, or a
                # close after a response that did not say so) before the request reached
                # it: nothing was answered, so it goes again on a new connection, once;
                # the attempt's send stamps are the new send's
        conn = await self._new_connection()
        await self._exchange_on(conn, message, att, max_body_bytes)

    async def _exchange_on(
        self, conn: http1.Connection, message: bytes, att: Attempt, max_body_bytes: int
    ) -> None:
        try:
            await conn.exchange(message, att, max_body_bytes)
        finally:
            if conn.closed:
                self._open.discard(conn)
            else:
                self._idle.append(conn)

    def _idle_connection(self) -> http1.Connection | None:
        """The most recently used idle kept-alive connection, if any is still open."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._open.discard(conn)
        return None

    async def _new_connection(self) -> http1.Connection:
        if self._addresses is None:
            loop = asyncio.get_running_loop()
            self._addresses = await loop.getaddrinfo(
                self._host, self._port, type=socket.SOCK_STREAM
            )
        conn = await http1.open_connection(self._addresses, self._tls, self._host)
        self._open.add(conn)
        return conn
