"""The OpenAI-compatible HTTP surface of the simulator (aiohttp).

Routes: ``POST /v1/completions``, ``POST /v1/chat/completions`` (streaming as SSE or
not), ``GET /v1/models``, ``GET /health``, ``GET /metrics``. Client mistakes get an
OpenAI error object (``{"error": {"message", "type", "param", "code"}}``) with a 4xx
status, never a 500: malformed JSON or fields (400), a prompt over the context limit
or ``max_tokens`` over its limit (400), an unknown model (404), a body over
``max_request_bytes`` (413), a missing or wrong API key (401), a generation request
beyond ``max_concurrent_requests`` in flight (429), a request that admission control
turns away (503, ``admission: reject``).

Text is the simulator's tokenization (``spark_harness.tokens``): the prompt's tokens
are its words (chat: a role token per message, then its words); the generated text is
one word per token, chosen deterministically from the prompt, so equal prompts give
equal answers. Each SSE event carries ``tokens_per_event`` tokens (the last may carry
fewer); a chat stream starts with a role-only chunk, like real servers.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import HttpVersion11, web

from spark_harness import tokens as tok
from spark_harness.sim.blockhash import block_hashes
from spark_harness.sim.config import SimConfig
from spark_harness.sim.engine import Engine, Sequence
from spark_harness.sim.metrics import SimMetrics

log = logging.getLogger(__name__)

#: The simulated model's vocabulary for generated text (one word per token).
VOCAB = (
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "at",
    "this",
    "from",
    "or",
    "an",
    "are",
    "not",
    "storage",
    "cache",
    "block",
    "token",
    "memory",
    "disk",
    "tier",
    "host",
    "device",
    "read",
    "write",
    "latency",
    "queue",
    "batch",
    "prefix",
    "decode",
    "prefill",
    "stream",
    "model",
    "spark",
    "unified",
    "bandwidth",
    "page",
    "file",
    "offload",
    "onboard",
    "reuse",
    "evict",
    "request",
    "context",
    "answer",
    "value",
    "state",
    "time",
    "step",
    "signal",
    "result",
)


class ApiError(Exception):
    """A client error answered with an OpenAI error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind

    def response(self) -> web.Response:
        return error_response(self.status, self.message, self.kind, self.param, self.code)


def error_response(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


@dataclass(frozen=True)
class Parsed:
    """A validated generation request."""

    chat: bool
    model: str
    adapter: str | None
    tokens: list[str]
    max_tokens: int
    stream: bool
    include_usage: bool
    ignore_eos: bool


def _get(body: dict[str, Any], key: str, kinds: type | tuple[type, ...], default: Any) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise ApiError(400, f"'{key}' has the wrong type", param=key)
    if not isinstance(value, kinds):
        raise ApiError(400, f"'{key}' has the wrong type", param=key)
    return value


class SseFrames:
    """The SSE events of one stream. Everything but the text is framed once, since a
    content event is written per token for every stream (the hot path)."""

    def __init__(self, head: dict[str, Any], chat: bool) -> None:
        self._pre = "data: " + json.dumps(head)[:-1] + ', "choices": ['
        self._chat = chat
        choice = '{"index": 0, "delta": {"content": ' if chat else '{"index": 0, "text": '
        tail = (
            '}, "finish_reason": null}]}\n\n'
            if chat
            else (', "logprobs": null, "finish_reason": null}]}\n\n')
        )
        self._content_pre = (self._pre + choice).encode()
        self._content_post = tail.encode()

    def content(self, text: str) -> bytes:
        # generated text is VOCAB words and spaces: nothing in it needs JSON escaping
        return self._content_pre + b'"' + text.encode() + b'"' + self._content_post

    def _choice(self, choice: dict[str, Any]) -> bytes:
        return (self._pre + json.dumps(choice) + "]}\n\n").encode()

    def role(self) -> bytes:
        """A chat stream's first chunk: the role, no content (as real servers send)."""
        return self._choice(
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        )

    def finish(self, reason: str | None) -> bytes:
        if self._chat:
            return self._choice({"index": 0, "delta": {}, "finish_reason": reason})
        return self._choice({"index": 0, "text": "", "logprobs": None, "finish_reason": reason})


class SimApi:
    """Request handling: validation, the engine round trip, response framing."""

    def __init__(
        self, cfg: SimConfig, engine: Engine, metrics: SimMetrics, model: str, adapters: list[str]
    ) -> None:
        self.cfg = cfg
        self.engine = engine
        self.metrics = metrics
        self.model = model
        self.adapters = set(adapters)
        self._adapter_order = adapters
        self._ids = itertools.count()
        self._in_flight = 0
        self._api_key = cfg.secret_api_key()
        self._id_prefix = os.urandom(4).hex()
        self.created = int(time.time())

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.cfg.max_request_bytes,
            middlewares=[self._errors, self._auth, self._limit],
        )
        app.router.add_post("/v1/completions", self.completions, expect_handler=self._expect)
        app.router.add_post(
            "/v1/chat/completions", self.chat_completions, expect_handler=self._expect
        )
        # every route answers an Expect header itself: aiohttp's default one fails with a
        # 500 on a header that is not UTF-8
        app.router.add_get("/v1/models", self.models, expect_handler=self._expect)
        app.router.add_get("/health", self.health, expect_handler=self._expect)
        app.router.add_get("/metrics", self.metrics_handler, expect_handler=self._expect)
        # every other method or path: an error object from us, not aiohttp's default
        app.router.add_route("*", "/{tail:.*}", self._no_route, expect_handler=self._expect)
        return app

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as e:
            return e.response()
        except web.HTTPRequestEntityTooLarge:
            return error_response(
                413,
                f"request body exceeds {self.cfg.max_request_bytes} bytes",
                code="request_too_large",
            )
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return error_response(e.status, e.reason, code=e.reason.lower().replace(" ", "_"))

    @web.middleware
    async def _auth(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        key = self._api_key
        if key and request.path.startswith("/v1/"):
            header = request.headers.get("Authorization", "")
            given = header[7:] if header.startswith("Bearer ") else ""
            # a header that is not UTF-8 arrives with surrogate escapes: still just wrong
            if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), key.encode()):
                raise ApiError(401, "invalid or missing API key", code="invalid_api_key")
        return await handler(request)

    @staticmethod
    async def _expect(request: web.Request) -> web.StreamResponse | None:
        """``Expect: 100-continue`` as aiohttp does it; any other expectation is a 417
        error object (aiohttp's default answers it in plain text, before middlewares)."""
        expect = request.headers.get("Expect", "")
        if request.version != HttpVersion11:
            return None
        if expect.lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the body has not started
            return None
        return error_response(
            417, f"unsupported Expect header: {expect!r}", code="expectation_failed"
        )

    @web.middleware
    async def _limit(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Cap the generation requests in flight: each holds a connection, a stream and
        engine state, so a flood of clients must not exhaust file descriptors or memory.
        The body is read first, under ``body_timeout_s``: a client that sends headers
        and withholds the body holds no slot, and is cut off."""
        if request.method != "POST":
            return await handler(request)
        try:
            await asyncio.wait_for(request.read(), self.cfg.body_timeout_s)
        except ConnectionError:  # the client went away mid-body: no one to answer
            log.debug("client went away before its body arrived")
            raise web.HTTPBadRequest() from None
        except TimeoutError:
            resp = error_response(
                408,
                f"request body not received within {self.cfg.body_timeout_s:g} s",
                code="request_timeout",
            )
            resp.force_close()  # the rest of the body may never come
            return resp
        limit = self.cfg.max_concurrent_requests
        if self._in_flight >= limit:
            raise ApiError(
                429,
                f"more than {limit} concurrent requests; retry later",
                kind="rate_limit_error",
                code="too_many_concurrent_requests",
            )
        self._in_flight += 1
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1

    # ------------------------------------------------------------------ small routes
    async def _no_route(self, request: web.Request) -> web.Response:
        known = {r.canonical for r in request.app.router.resources()} - {"/{tail}"}
        if request.path in known:
            raise ApiError(405, f"{request.method} is not allowed on {request.path}")
        raise ApiError(404, f"no route {request.path}", code="not_found")

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def models(self, request: web.Request) -> web.Response:
        def card(name: str, parent: str | None) -> dict[str, Any]:
            return {
                "id": name,
                "object": "model",
                "created": self.created,
                "owned_by": "spark-harness-sim",
                "root": name,
                "parent": parent,
                "max_model_len": self.cfg.max_model_len,
            }

        data = [card(self.model, None)] + [card(a, self.model) for a in self._adapter_order]
        return web.json_response({"object": "list", "data": data})

    async def metrics_handler(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(
            body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    # ------------------------------------------------------------------ generation
    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()  # already read by _limit: no wait here
        try:
            body = json.loads(raw)
        except RecursionError as e:  # 200 k nested brackets
            raise ApiError(400, "request body is nested too deeply") from e
        except ValueError as e:  # not JSON, not UTF-8, or an integer of > 4300 digits
            raise ApiError(400, f"request body is not valid JSON: {e}") from e
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    def _parse(self, body: dict[str, Any], chat: bool) -> Parsed:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise ApiError(400, "'model' is required", param="model")
        if model != self.model and model not in self.adapters:
            raise ApiError(
                404, f"The model `{model}` does not exist.", param="model", code="model_not_found"
            )
        if _get(body, "n", int, 1) != 1:
            raise ApiError(400, "only n = 1 is supported", param="n")
        if chat:
            tokens = self._chat_tokens(body)
            max_tokens = _get(body, "max_completion_tokens", int, None)
            max_tokens = _get(body, "max_tokens", int, max_tokens)
        else:
            tokens = self._prompt_tokens(body)
            max_tokens = _get(body, "max_tokens", int, None)
        if max_tokens is None:
            max_tokens = self.cfg.default_max_tokens
        if max_tokens < 1:
            raise ApiError(400, "'max_tokens' must be at least 1", param="max_tokens")
        if max_tokens > self.cfg.max_tokens_limit:
            raise ApiError(
                400, f"'max_tokens' must be at most {self.cfg.max_tokens_limit}", param="max_tokens"
            )
        if not tokens:
            raise ApiError(400, "the prompt is empty", param="messages" if chat else "prompt")
        total = len(tokens) + max_tokens
        if total > self.cfg.max_model_len:
            raise ApiError(
                400,
                f"This model's maximum context length is {self.cfg.max_model_len} tokens. "
                f"However, you requested {total} tokens ({len(tokens)} in the messages, "
                f"{max_tokens} in the completion).",
                param="messages" if chat else "prompt",
                code="context_length_exceeded",
            )
        blocks = self.cfg.blocks_for(total)
        if blocks > self.cfg.g1_blocks:
            raise ApiError(
                400,
                f"the request needs {blocks} KV blocks; G1 holds {self.cfg.g1_blocks}",
                code="context_length_exceeded",
            )
        stream = _get(body, "stream", bool, False)
        options = _get(body, "stream_options", dict, {})
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise ApiError(
                400, "'stream_options.include_usage' must be a boolean", param="stream_options"
            )
        return Parsed(
            chat=chat,
            model=model,
            adapter=None if model == self.model else model,
            tokens=tokens,
            max_tokens=max_tokens,
            stream=stream,
            include_usage=include_usage,
            ignore_eos=_get(body, "ignore_eos", bool, False),
        )

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> list[str]:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ApiError(
                400, "'prompt' must be a string (or a list of one string)", param="prompt"
            )
        return tok.text_tokens(prompt)

    @staticmethod
    def _chat_tokens(body: dict[str, Any]) -> list[str]:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "'messages' must be a non-empty list", param="messages")
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise ApiError(400, "each message needs a string 'role'", param="messages")
            content = m.get("content")
            if content is not None and not isinstance(content, str | list):
                raise ApiError(
                    400, "message 'content' must be a string or a list of parts", param="messages"
                )
        # a null content (an assistant turn that only called tools) has no words
        return tok.chat_tokens({**m, "content": m.get("content") or ""} for m in messages)

    def _sequence(self, p: Parsed) -> Sequence:
        salt = p.adapter or self.model
        hashes = block_hashes(p.tokens, self.cfg.block_tokens, salt)
        stop_after = p.max_tokens
        natural = self.cfg.natural_output_tokens
        if natural is not None and not p.ignore_eos:
            stop_after = min(stop_after, natural)
        rid = f"{self._id_prefix}-{next(self._ids)}"
        return Sequence(
            rid=rid,
            prompt_len=len(p.tokens),
            hashes=hashes,
            max_tokens=p.max_tokens,
            stop_after=stop_after,
            adapter=p.adapter,
            arrival=time.monotonic(),
        )

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        parsed = self._parse(await self._read_json(request), chat)
        seq = self._sequence(parsed)
        if self.cfg.admission == "reject" and not self.engine.has_room(seq):
            self.engine.stats.rejected += 1
            raise ApiError(
                503,
                "KV cache is full: the request was rejected by admission control; retry later",
                kind="server_overloaded",
                code="kv_cache_full",
            )
        self.engine.submit(seq)
        try:
            if parsed.stream:
                return await self._stream(request, parsed, seq)
            return await self._complete(parsed, seq)
        finally:
            if not seq.done:
                self.engine.abort(seq)

    # ------------------------------------------------------------------ framing
    @staticmethod
    def _text(seq: Sequence, start: int, count: int) -> str:
        """Tokens ``start`` .. ``start + count`` of the answer: words picked by the prompt."""
        base = seq.hashes[0][0] if seq.hashes else seq.prompt_len
        n = len(VOCAB)
        if count == 1:  # the common case, once per token of every stream
            word = VOCAB[(base + 7 * start) % n]
            return word if start == 0 else " " + word
        text = " ".join(VOCAB[(base + 7 * i) % n] for i in range(start, start + count))
        return text if start == 0 else " " + text

    def _usage(self, seq: Sequence) -> dict[str, Any]:
        queue_ms = None if seq.admitted_at is None else (seq.admitted_at - seq.arrival) * 1e3
        return {
            "prompt_tokens": seq.prompt_len,
            "completion_tokens": seq.generated,
            "total_tokens": seq.prompt_len + seq.generated,
            "prompt_tokens_details": {"cached_tokens": seq.cached_tokens or 0},
            "sim": {
                "g3_fetch_ms": seq.g3_seconds * 1e3,
                "g3_onboard_blocks": seq.g3_blocks,
                "g2_fetch_ms": seq.g2_seconds * 1e3,
                "g2_onboard_blocks": seq.g2_blocks,
                "queue_ms": queue_ms,
                "lora_load_ms": seq.lora_seconds * 1e3,
                "preemptions": seq.preemptions,
            },
        }

    def _head(self, p: Parsed, seq: Sequence) -> dict[str, Any]:
        prefix = "chatcmpl" if p.chat else "cmpl"
        return {
            "id": f"{prefix}-{seq.rid}",
            "object": "chat.completion" if p.chat else "text_completion",
            "created": int(time.time()),
            "model": p.model,
        }

    async def _complete(self, p: Parsed, seq: Sequence) -> web.Response:
        while not seq.done:
            await seq.changed()
        if seq.error is not None:
            raise ApiError(503, seq.error, kind="server_error")
        text = self._text(seq, 0, seq.generated) if seq.generated else ""
        if p.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": seq.finish_reason,
            }
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": seq.finish_reason,
            }
        body = self._head(p, seq) | {"choices": [choice], "usage": self._usage(seq)}
        return web.json_response(body)

    async def _stream(self, request: web.Request, p: Parsed, seq: Sequence) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        head = self._head(p, seq)
        head["object"] = "chat.completion.chunk" if p.chat else "text_completion"
        frames = SseFrames(head, p.chat)
        # A write waits while the socket's buffers are full: a client that stops reading
        # would hold its slot and its sequence forever. One timer per stream (a timeout
        # per write would cost the event loop ~5 us an event) cuts the connection once a
        # write has waited write_timeout_s; it notices within twice that.
        limit, loop = self.cfg.write_timeout_s, asyncio.get_running_loop()
        writing_since: float | None = None
        watchdog: asyncio.TimerHandle | None = None

        def check() -> None:
            nonlocal watchdog
            if writing_since is not None and loop.time() - writing_since >= limit:
                log.info("client of %s read nothing for %g s: stream cut", seq.rid, limit)
                if request.transport is not None:
                    request.transport.abort()  # the pending write fails, the slot is freed
                return
            watchdog = loop.call_later(limit, check)

        watchdog = loop.call_later(limit, check)

        async def send(data: bytes) -> None:
            nonlocal writing_since
            writing_since = loop.time()
            await resp.write(data)
            writing_since = None

        try:
            if p.chat:
                await send(frames.role())
            per_event = self.cfg.tokens_per_event
            sent = 0
            while True:
                ready = seq.generated - sent
                while ready >= per_event or (seq.done and ready > 0):
                    n = min(per_event, ready)
                    await send(frames.content(self._text(seq, sent, n)))
                    sent += n
                    ready -= n
                if seq.done:
                    break
                await seq.changed()
            if seq.error is not None:
                err = {
                    "error": {
                        "message": seq.error,
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                await send(f"data: {json.dumps(err)}\n\n".encode())
            else:
                await send(frames.finish(seq.finish_reason))
                if p.include_usage:
                    usage = head | {"choices": [], "usage": self._usage(seq)}
                    await send(f"data: {json.dumps(usage)}\n\n".encode())
            await send(b"data: [DONE]\n\n")
            await resp.write_eof()
        except ConnectionError:
            log.debug("client of %s went away", seq.rid)
        finally:
            if watchdog is not None:
                watchdog.cancel()
        return resp
