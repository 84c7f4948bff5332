"""The HTTP side of the load generator: one shared aiohttp session, one streamed request.

Choices that keep the numbers right (docs/REFERENCE.md, "Measuring streamed responses"):

- one session for the run, its connector sized for the planned concurrency (aiohttp's
  default caps at 100 connections), keep-alive on, a 4 MiB read buffer (the 64 KiB
  default throttles long streams);
- ``sent`` is stamped just before the request goes to the socket (aiohttp's
  request-chunk trace hook fires right before the body, with the buffered headers, is
  written; the connection hooks stamp it first, for a request whose body never goes
  out), so waiting for a connection and serializing the request are client queueing,
  never server latency;
- the socket keeps each raw read with its kernel receive stamp (:mod:`.kstamp`): where
  those reads are the body (plain HTTP, chunked) the request's task does not wake per
  event but waits for the response's end, and the socket's reads carry every event's
  stamp, so neither the client's scheduling delays nor its per-event work is in the
  numbers or in the loop's way; elsewhere each chunk is stamped on arrival with the
  monotonic clock and stored raw. Parsing happens after the stream closes
  (:mod:`.record`, in the recorder process);
- every failure becomes the attempt's ``error_kind``/``error``: ``http`` or ``rejected``
  (429/503) with the status, ``connect``, ``reset`` (connection dropped mid-request),
  ``timeout`` (``request_timeout_s`` for the whole request, so a stalled stream ends),
  ``bad_sse`` (not an event stream), ``other``. Nothing is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from types import SimpleNamespace
from typing import Any

import aiohttp

from spark_harness.contract import Endpoint
from spark_harness.loadgen import kstamp
from spark_harness.loadgen.record import Attempt
from spark_harness.secrets import endpoint_api_key
from spark_harness.workloads import Request

READ_BUFFER_BYTES = 4 << 20
#: After ``data: [DONE]``, how long to wait for the server to end the response before
#: taking the stream as complete (a server that keeps it open would otherwise time out).
DONE_GRACE_S = 1.0
#: encoded request bodies kept for reuse (closed-loop users' prompts; a workload that
#: makes a new prompt per request fills it once and then encodes as it sends)
BODY_CACHE_ENTRIES = 4096


def _socket_holds_body(resp: aiohttp.ClientResponse) -> bool:
    """Whether the socket's raw reads are the body itself: plain HTTP (no TLS between
    them), chunked (what :func:`.kstamp.dechunk` decodes), not compressed."""
    h = resp.headers
    return (
        resp.url.scheme == "http"
        and h.get("Transfer-Encoding", "").lower() == "chunked"
        and h.get("Content-Encoding", "identity").lower() == "identity"
    )


def _received(att: Attempt) -> str:
    """What had arrived of a response when it failed, for its error message."""
    if att.whole_body:
        return f"{len(att.captured or ())} socket reads"
    return f"{len(att.chunks)} chunks"


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


async def _stamp_sent(_session: Any, ctx: SimpleNamespace, _params: Any) -> None:
    ctx.trace_request_ctx.sent_ns = time.monotonic_ns()


async def _stamp_body_sent(session: Any, ctx: SimpleNamespace, params: Any) -> None:
    if params.chunk:  # not the end-of-body marker, which may go out after the reply began
        await _stamp_sent(session, ctx, params)


def _trace_config() -> aiohttp.TraceConfig:
    tc = aiohttp.TraceConfig()
    tc.on_connection_create_end.append(_stamp_sent)
    tc.on_connection_reuseconn.append(_stamp_sent)
    tc.on_request_chunk_sent.append(_stamp_body_sent)  # the last: the request goes out
    return tc


class Client:
    """Sends requests over one shared session; use as ``async with Client(...)``."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        connections: int,
        timeout_s: float,
        max_prompt_tokens: int | None = None,
    ) -> None:
        self.model = endpoint.model
        # a keyed server's key, read where its endpoint says (spark_harness.secrets)
        key = endpoint_api_key(endpoint.extra)
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}
        self.base_url = endpoint.base_url
        self.connections = connections  # 0: unlimited
        self.timeout_s = timeout_s
        self.max_prompt_tokens = max_prompt_tokens
        self._session: aiohttp.ClientSession | None = None
        #: encoded bodies by prompt identity (the prompt is kept, so its id stays its own)
        self._bodies: dict[tuple[int, int, str | None], tuple[Any, bytes]] = {}

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(
            limit=self.connections,
            limit_per_host=0,
            keepalive_timeout=30,
            socket_factory=kstamp.socket_factory,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            read_bufsize=READ_BUFFER_BYTES,
            timeout=aiohttp.ClientTimeout(total=None),
            trace_configs=[_trace_config()],
            headers={"Accept": "text/event-stream", **self._auth},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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

    async def send(self, request: Request, att: Attempt) -> None:
        """Send ``request`` and fill ``att`` with what was observed; never raises on a
        server or network failure (cancellation still propagates)."""
        assert self._session is not None, "use Client as an async context manager"
        if self.max_prompt_tokens and request.prompt_tokens > self.max_prompt_tokens:
            att.error_kind = "rejected"
            att.error = (
                f"not sent: prompt of {request.prompt_tokens} tokens exceeds the engine's "
                f"max_num_tokens {self.max_prompt_tokens} (preflight)"
            )
            att.end_ns = time.monotonic_ns()
            return
        payload = self.body(request)
        headers = {"Content-Type": "application/json", "X-Request-Id": att.request_id}
        url = api_url(self.base_url, request.chat)
        sockets: list[kstamp.StampedSocket] = []
        token = kstamp.sending.set(sockets)  # the socket that sends this request joins
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._exchange(url, payload, headers, att, sockets)
        except TimeoutError:
            att.error_kind = "timeout"
            att.error = (
                f"no complete response within {self.timeout_s:g} s ({_received(att)} received)"
            )
        except aiohttp.ClientConnectorError as e:
            att.error_kind, att.error = "connect", f"cannot connect: {e}"
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientOSError,
            ConnectionError,
        ) as e:
            att.error_kind = "reset"
            att.error = f"connection lost after {_received(att)}: {type(e).__name__}: {e}"
        except aiohttp.ClientError as e:
            att.error_kind, att.error = "other", f"{type(e).__name__}: {e}"
        finally:
            kstamp.sending.reset(token)
            att.end_ns = time.monotonic_ns()

    async def _exchange(
        self,
        url: str,
        payload: bytes,
        headers: dict[str, str],
        att: Attempt,
        sockets: list[kstamp.StampedSocket],
    ) -> None:
        assert self._session is not None
        async with self._session.post(
            url,
            data=payload,
            headers=headers,
            trace_request_ctx=att,  # type: ignore[arg-type]
        ) as resp:
            complete = await self._read_response(resp, att, sockets)
        if complete and not att.whole_body and len(sockets) == 1:
            att.captured, att.socket_sent_ns = sockets[0].take(), sockets[0].sent_ns

    async def _read_response(
        self, resp: aiohttp.ClientResponse, att: Attempt, sockets: list[kstamp.StampedSocket]
    ) -> bool:
        """Check status and type, then read the stream; True if it was read to its end."""
        att.status = resp.status
        if resp.status != 200:
            text = (await resp.content.read(2048)).decode("utf-8", "replace").strip()
            att.error_kind = "rejected" if resp.status in (429, 503) else "http"
            att.error = f"HTTP {resp.status}: {text[:300]}"
            return False
        ctype = resp.headers.get("Content-Type", "")
        if not ctype.startswith("text/event-stream"):
            att.error_kind = "bad_sse"
            att.error = f"expected text/event-stream, got {ctype or 'no Content-Type'}"
            return False
        sock = sockets[0] if len(sockets) == 1 else None
        if sock is not None and sock.capture and _socket_holds_body(resp):
            await self._read_whole(resp.content, att, sock)
        else:
            await self._read_stream(resp.content.readany, att)
        return True

    @staticmethod
    async def _read_whole(
        content: aiohttp.StreamReader, att: Attempt, sock: kstamp.StampedSocket
    ) -> None:
        """Wait for the end of a response whose every read the socket keeps, without
        waking for each event (the socket's reads carry the stamps): the loop's work per
        streamed event is aiohttp's parsing only. The end is the response's, or
        ``DONE_GRACE_S`` after ``data: [DONE]``. Whatever happens, the attempt keeps the
        socket's reads of this response (a failed stream's first events included)."""
        capture, att.socket_sent_ns = sock.capture, sock.sent_ns  # this response's own
        att.whole_body = True
        loop = asyncio.get_running_loop()

        def done() -> None:
            grace.reschedule(loop.time() + DONE_GRACE_S)

        try:
            async with asyncio.timeout(None) as grace:
                sock.on_done = done
                if sock.done_seen:
                    done()
                if (exc := content.exception()) is not None:
                    raise exc
                await content.wait_eof()
        except TimeoutError:
            if not grace.expired():
                raise
        finally:
            if sock.on_done is done:  # not a later request's, should the socket be reused
                sock.on_done = None
            # a copy: a response left open after [DONE] may still be read into the list
            att.captured = list(capture)
            att.body_bytes = content.total_bytes  # left unread: the socket's reads hold it

    @staticmethod
    async def _read_stream(read: Any, att: Attempt) -> None:
        """Append each piece of the body with its arrival stamp and lower bound (the
        previous piece's stamp: the buffer was empty then), until the end of the
        response (or shortly after ``data: [DONE]``)."""
        chunks, lower = att.chunks, att.lower_ns
        prev = att.sent_ns or 0
        while True:
            data = await read()
            t = time.monotonic_ns()
            if not data:
                return
            chunks.append((t, data))
            lower.append(prev)
            prev = t
            if data.rstrip(b"\r\n").endswith(kstamp.DONE_MARK):
                break
        # [DONE] seen: let the server end the response so the connection is reused
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DONE_GRACE_S):
                while data:
                    data = await read()
                    if data:
                        chunks.append((time.monotonic_ns(), data))
                        lower.append(prev)
