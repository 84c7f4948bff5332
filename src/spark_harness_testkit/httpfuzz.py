"""Hostile HTTP clients for the simulator's fuzz tests and fuzz benchmark.

:func:`cases` is a Hypothesis strategy of raw requests (bodies, headers, JSON nesting,
numbers, encodings) and client behaviours (whole, slow, abandoned); :func:`exchange`
plays one against a server over a raw socket and returns the status it got, so no
HTTP client library's own checks stand between the case and the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

from spark_harness.serving.process import bind_socket
from spark_harness.sim.server import serve

PATHS = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics", "/x")
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3})")


@dataclass
class Case:
    """One raw request and how the client behaves while sending it."""

    method: str
    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    behaviour: str = "whole"  # whole | slow | abandon | withhold

    def wire(self) -> bytes:
        head = f"{self.method} {self.path} HTTP/1.1\r\n".encode("utf-8", "surrogateescape")
        lines = b"".join(k + b": " + v + b"\r\n" for k, v in self.headers)
        return head + b"Host: 127.0.0.1\r\n" + lines + b"\r\n" + self.body


@dataclass
class Outcome:
    status: int | None  # None: the server closed without an answer (or we abandoned)
    hung: bool = False  # no answer and no close within the limit


async def exchange(host: str, port: int, case: Case, limit_s: float = 10.0) -> Outcome:
    """Send ``case`` and read the status line; the server must answer or close within
    ``limit_s`` (a withheld body: within its body timeout plus that)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        data = case.wire()
        if case.behaviour == "abandon":
            writer.write(data[: len(data) // 2])
            await writer.drain()
            return Outcome(None)
        if case.behaviour == "slow":
            for i in range(0, len(data), max(1, len(data) // 8)):
                writer.write(data[i : i + max(1, len(data) // 8)])
                await writer.drain()
                await asyncio.sleep(0.002)
        elif case.behaviour == "withhold":
            writer.write(data[: len(data) - max(1, len(case.body) // 2)])
            await writer.drain()
        else:
            writer.write(data)
            await writer.drain()
        try:
            line = await asyncio.wait_for(reader.readline(), limit_s)
        except TimeoutError:
            return Outcome(None, hung=True)
        m = _STATUS.match(line)
        return Outcome(int(m[1]) if m else None)
    except ConnectionError:
        return Outcome(None)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


class _Raw(bytes):
    """A JSON number written as it is (``json`` cannot write 6,000 digits or NaN)."""


_SMALL = st.integers() | st.floats(allow_nan=False, allow_infinity=False)
_NUMBER = st.one_of(
    _SMALL,
    st.integers(1, 6000).map(lambda n: _Raw(b"9" * n)),  # up to 6,000 digits
    st.sampled_from([_Raw(b"1e999"), _Raw(b"-0"), _Raw(b"NaN"), _Raw(b"Infinity")]),
)
_JSON = st.recursive(
    st.none() | st.booleans() | _SMALL | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS: tuple[str, ...] = ("model", "prompt", "messages", "max_tokens", "max_completion_tokens")
_FIELDS += ("n", "stream", "stream_options", "ignore_eos")


def _dump(value: object) -> bytes:
    return value if isinstance(value, _Raw) else json.dumps(value).encode()


@st.composite
def _body(draw: st.DrawFn, model: str) -> bytes:
    kind = draw(st.sampled_from(["request", "json", "nested", "bytes", "encoding", "empty"]))
    if kind == "request":
        body: dict[str, object] = {"model": draw(st.sampled_from([model, "nope", ""]))}
        if draw(st.booleans()):
            body["prompt"] = draw(st.text(max_size=40) | _JSON)
        else:
            body["messages"] = draw(
                st.lists(st.fixed_dictionaries({"role": _JSON | st.just("user"), "content": _JSON}))
                | _JSON
            )
        for f in draw(st.lists(st.sampled_from(_FIELDS), max_size=4)):
            body[f] = draw(_JSON | _NUMBER)
        raw = b"{" + b",".join(_dump(k) + b":" + _dump(v) for k, v in body.items()) + b"}"
        return raw
    if kind == "json":
        return _dump(draw(_JSON))
    if kind == "nested":
        return _nested(draw(st.sampled_from([100, 1000, 10_000, 200_000])))
    if kind == "encoding":
        text = draw(st.text(max_size=30))
        codec = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "utf-8-sig"]))
        return json.dumps({"model": model, "prompt": text}).encode(codec, "replace")
    if kind == "empty":
        return b""
    return draw(st.binary(max_size=64))


_HEADER_VALUE = st.one_of(
    st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogateescape")),
    st.sampled_from([b"Bearer \xc3\xa9\xff", b"Bearer k3y", b"Basic x", b"100-continue"]),
)
_HEADER_NAME = st.sampled_from(
    [b"Authorization", b"Content-Type", b"Expect", b"Transfer-Encoding", b"X-Any", b"Accept"]
)


@st.composite
def cases(draw: st.DrawFn, model: str = "m", slow: bool = True) -> Case:
    """A raw request: method, path, headers (a Content-Length usually right, sometimes
    wrong or absent), body and behaviour (``slow``: allow slow, abandoned and
    withheld bodies)."""
    body = draw(_body(model))
    headers = draw(st.lists(st.tuples(_HEADER_NAME, _HEADER_VALUE), max_size=3))
    length = draw(st.sampled_from(["right", "right", "right", "none", "short", "huge", "junk"]))
    if length == "right":
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif length == "short":
        headers.append((b"Content-Length", str(max(0, len(body) - 1)).encode()))
    elif length == "huge":
        headers.append((b"Content-Length", b"9" * draw(st.integers(1, 40))))
    elif length == "junk":
        headers.append((b"Content-Length", b"-1"))
    behaviours = ["whole"] * 6 + (["slow", "abandon", "withhold"] if slow else [])
    return Case(
        method=draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE"])),
        path=draw(st.sampled_from(PATHS)),
        headers=headers,
        body=body,
        behaviour=draw(st.sampled_from(behaviours)),
    )


def open_fds(pid: int | None = None) -> int:
    """File descriptors open in ``pid`` (default: this process)."""
    return len(os.listdir(f"/proc/{pid or 'self'}/fd"))


class SimThread:
    """The simulator's real server (:func:`spark_harness.sim.server.serve`, with its
    timeouts) on a loopback port, in a thread with its own event loop."""

    def __init__(self, sim: dict[str, object], workdir: Path, model: str = "m") -> None:
        self.spec = {"name": "fuzz", "kind": "sim", "model": model, "sim": sim}
        self.workdir = workdir
        self.sock = bind_socket("127.0.0.1", 0)
        self.host, self.port = self.sock.getsockname()[:2]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._loop.call_soon(self._ready.set)
            await serve(self.sock, self.spec, self.workdir, self._stop)

        try:
            asyncio.run(main())
        except BaseException as e:  # reported by stop()
            self.error = e
            self._ready.set()

    def __enter__(self) -> SimThread:
        self._thread.start()
        self._ready.wait(30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # listening starts after set-up
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1):
                return self
            time.sleep(0.02)
        raise RuntimeError(f"simulator did not listen: {self.error!r}")

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self.error is not None:
            raise self.error
