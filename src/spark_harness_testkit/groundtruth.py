"""A ground-truth streaming server to calibrate the load generator against.

It speaks enough of the OpenAI API (``/v1/completions``, ``/v1/chat/completions``,
streamed) to be measured, with injected timing, and stamps every event it writes with
the monotonic clock, which on Linux is shared by all processes of the host. So the
client's TTFT and TPOT can be compared per request with what really happened:

- truth TTFT = first content event written - request received (``recv_ns``: the kernel's
  receive time of the request's first bytes, so the server's own delays in reading the
  request count as server time, as they would for a real server);
- truth TPOT = (last content write - first content write) / (tokens - 1).

Timing: the first content event is due ``ttft_ms`` (+ uniform jitter up to
``ttft_jitter_ms``) after the request arrived, then one event every ``itl_ms``, each
carrying ``tokens_per_event`` words ("t0 t1 ..."); deadlines are absolute, so server
lateness does not accumulate, and each event's lateness (write - due) is kept
(``late_ns``): a benchmark shows with it that the server was not the limit. With
``events_per_write`` > 1 the events go out in writes of that many, each when its last
event is due (a server that flushes every few tokens; at zero delay, a whole reply in
one write), and every event of a write has the write's stamp and lateness. Each write
is stamped before (``events_ns``, the truth) and after (``written_ns``): a server
descheduled between the two on a busy machine sends later than its truth says. A role-only
chunk (chat: ``delta.role`` with empty content; completions: empty text) is written at
once, before any content.

Misbehaviours, selected by the request's ``"model"``: ``http-500``, ``http-429``,
``not-sse`` (a 200 JSON reply), ``bad-json`` (an event that is not JSON), ``reset``
(connection dropped mid-stream), ``stall`` (stops sending mid-stream), ``no-done`` (ends
without ``[DONE]``), ``error-event`` (an ``error`` object mid-stream), ``no-content``
(only role chunk and usage). Misbehaving streams go wrong after ``MISBEHAVE_AFTER``
content events. ``linger`` is complete but keeps the response open after ``[DONE]``.

Run it in its own process (``python -m spark_harness_testkit.groundtruth --help``, or
:class:`TruthServer`) so it does not share the client's event loop or core;
:func:`serve` runs it inside the caller's loop for tests that check behaviour, not timing.
``GET /truth`` returns the stamps by ``X-Request-Id`` (``?clear=1`` empties them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import select
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

import psutil
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from spark_harness import tokens
from spark_harness.loadgen import kstamp

MISBEHAVIOURS = (
    "http-500",
    "http-429",
    "not-sse",
    "bad-json",
    "reset",
    "stall",
    "no-done",
    "error-event",
    "no-content",
)
MISBEHAVE_AFTER = 2
#: a well-formed stream whose response stays open after ``[DONE]`` (not an error)
LINGER = "linger"


@dataclass
class TruthConfig:
    ttft_ms: float = 20.0
    ttft_jitter_ms: float = 0.0
    itl_ms: float = 5.0
    tokens_per_event: int = 1
    #: content events written together (each batch when its last event is due), as a
    #: server that flushes every few tokens does; at zero delay, a whole reply at once
    events_per_write: int = 1
    role_chunk: bool = True
    cached_tokens: int = 0
    sim_usage: bool = False  # add usage.sim {g3_fetch_ms, g3_onboard_blocks} like the simulator
    stall_s: float = 30.0
    retry_after: str = ""  # the Retry-After header of an ``http-429`` reply (none if empty)
    seed: int = 0


#: accepted sockets by file descriptor, until their protocol picks them up
_accepted: dict[int, kstamp.StampedSocket] = {}


class _Listener(socket.socket):
    """A listening socket whose connections are :class:`kstamp.StampedSocket` objects."""

    def accept(self) -> tuple[socket.socket, Any]:
        fd, addr = self._accept()  # type: ignore[attr-defined]
        sock = kstamp.StampedSocket(self.family, self.type, self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)  # as socket.accept does
        _accepted[fd] = sock
        return sock, addr


class _Protocol(RequestHandler):
    """Stamps the arrival of a request's first bytes: the kernel's receive time where
    available, so the truth's "received" is the wire's, whatever the server's own
    scheduling delays."""

    first_rx_ns: int | None = None
    first_rx_kernel = False  # the kernel stamped it (else: the server's read, late)
    _ksock: kstamp.StampedSocket | None = None

    def connection_made(self, transport: Any) -> None:
        self._ksock = _accepted.pop(transport.get_extra_info("socket").fileno(), None)
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        reads = self._ksock.take() if self._ksock is not None else []
        if self.first_rx_ns is None:
            self.first_rx_ns = reads[0][0] if reads else time.monotonic_ns()
            self.first_rx_kernel = bool(reads) and reads[0][3]
        super().data_received(data)


class _StampingServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


def _frame(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


class _Server:
    def __init__(self, cfg: TruthConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.truth: dict[str, dict[str, Any]] = {}
        self._anon = 0

    def server(self) -> web.Server:
        return _StampingServer(self.dispatch, handler_cancellation=True)

    async def dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        routes = {
            ("POST", "/v1/completions"): self.complete,
            ("POST", "/v1/chat/completions"): self.complete,
            ("GET", "/v1/models"): self.models,
            ("GET", "/health"): self.health,
            ("GET", "/truth"): self.get_truth,
        }
        handler = routes.get((request.method, request.path))
        if handler is None:
            return web.json_response({"error": {"message": "not found"}}, status=404)
        return await handler(request)

    async def health(self, request: web.BaseRequest) -> web.Response:
        return web.json_response({"status": "ok"})

    async def models(self, request: web.BaseRequest) -> web.Response:
        # the misbehaviours are listed as models, so a whole point can be run against one
        names = ("truth", *MISBEHAVIOURS, LINGER)
        return web.json_response(
            {"object": "list", "data": [{"id": n, "object": "model"} for n in names]}
        )

    async def get_truth(self, request: web.BaseRequest) -> web.Response:
        out = web.json_response(self.truth)
        if request.query.get("clear"):
            self.truth = {}
        return out

    def _chunk(self, chat: bool, text: str | None, role: bool = False) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {"content": text or ""}
            if role:
                delta["role"] = "assistant"
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": None}
            return {"object": "chat.completion.chunk", "choices": [choice]}
        return {"object": "text_completion", "choices": [{"index": 0, "text": text or ""}]}

    def _usage(self, body: dict[str, Any], chat: bool, completion: int) -> dict[str, Any]:
        prompt = (
            tokens.count_chat(body.get("messages", []))
            if chat
            else tokens.count_text(str(body.get("prompt", "")))
        )
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": self.cfg.cached_tokens},
        }
        if self.cfg.sim_usage:
            usage["sim"] = {"g3_fetch_ms": 1.25, "g3_onboard_blocks": 3}
        return {"object": "chunk", "choices": [], "usage": usage}

    async def complete(self, request: web.BaseRequest) -> web.StreamResponse:
        proto = request.protocol
        recv = proto.first_rx_ns if isinstance(proto, _Protocol) and proto.first_rx_ns else 0
        kernel = bool(recv) and isinstance(proto, _Protocol) and proto.first_rx_kernel
        recv = recv or time.monotonic_ns()
        try:
            return await self._complete(request, recv, kernel)
        finally:
            if isinstance(proto, _Protocol):
                proto.first_rx_ns = None  # the next request on this connection starts anew

    async def _complete(
        self, request: web.BaseRequest, recv: int, recv_kernel: bool
    ) -> web.StreamResponse:
        cfg = self.cfg
        rid = request.headers.get("X-Request-Id")
        if rid is None:
            rid = f"anon{self._anon}"
            self._anon += 1
        body = await request.json()
        model = body.get("model")
        chat = request.path.endswith("/chat/completions")
        n_out = int(body.get("max_tokens", 16))
        if model == "http-500":
            return web.json_response({"error": {"message": "injected failure"}}, status=500)
        if model == "http-429":
            headers = {"Retry-After": cfg.retry_after} if cfg.retry_after else None
            return web.json_response(
                {"error": {"message": "too many requests"}}, status=429, headers=headers
            )
        if model == "not-sse":
            return web.json_response({"choices": [{"text": "t0"}]})
        truth: dict[str, Any] = {
            "recv_ns": recv,
            "recv_kernel": recv_kernel,
            "events_ns": [],
            "event_tokens": [],
            "late_ns": [],
            "written_ns": [],
        }
        self.truth[rid] = truth
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        if cfg.role_chunk:
            await resp.write(_frame(self._chunk(chat, None, role=True)))
        ttft_ns = round((cfg.ttft_ms + self.rng.uniform(0, cfg.ttft_jitter_ms)) * 1e6)
        itl_ns = round(cfg.itl_ms * 1e6)
        emitted = 0
        idx = 0
        batch: list[tuple[int, int]] = []  # (due, tokens) of the events in `frames`
        frames: list[bytes] = []

        async def flush() -> None:
            if not frames:
                return
            t = time.monotonic_ns()
            await resp.write(b"".join(frames) if len(frames) > 1 else frames[0])
            written = time.monotonic_ns()
            late = max(0, t - batch[-1][0])  # the write was due with its last event
            for _, m_i in batch:
                truth["events_ns"].append(t)
                truth["written_ns"].append(written)
                truth["late_ns"].append(late)
                truth["event_tokens"].append(m_i)
            batch.clear()
            frames.clear()

        while emitted < n_out and model != "no-content":
            due = recv + ttft_ns + idx * itl_ns
            delay = (due - time.monotonic_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            if idx == MISBEHAVE_AFTER and model in MISBEHAVIOURS:
                await flush()
                if model == "reset":
                    assert request.transport is not None
                    request.transport.abort()
                    return resp
                if model == "stall":
                    await asyncio.sleep(cfg.stall_s)
                    return resp
                if model == "bad-json":
                    await resp.write(b"data: {not json\n\n")
                    break
                if model == "error-event":
                    await resp.write(_frame({"error": {"message": "injected stream error"}}))
                    break
            m = min(cfg.tokens_per_event, n_out - emitted)
            text = (" " if emitted else "") + " ".join(f"t{emitted + j}" for j in range(m))
            frames.append(_frame(self._chunk(chat, text)))
            batch.append((due, m))
            emitted += m
            idx += 1
            if len(frames) >= cfg.events_per_write or emitted >= n_out:
                await flush()
        await resp.write(_frame(self._usage(body, chat, emitted)))
        if model != "no-done":
            await resp.write(b"data: [DONE]\n\n")
        if model == LINGER:
            await asyncio.sleep(cfg.stall_s)
        await resp.write_eof()
        return resp


async def _start(runner: web.BaseRunner, port: int) -> socket.socket:
    """Start ``runner`` on 127.0.0.1:``port`` (0: a free port); return the socket."""
    await runner.setup()
    sock = _Listener(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    await web.SockSite(runner, sock, backlog=1024).start()
    return sock


@contextlib.asynccontextmanager
async def serve(cfg: TruthConfig | None = None) -> AsyncIterator[str]:
    """Run the server in the current event loop on a free port; yield its base URL."""
    runner = web.ServerRunner(_Server(cfg or TruthConfig()).server(), shutdown_timeout=0.5)
    sock = await _start(runner, 0)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


def pin_apart() -> int | None:
    """Pin the calling process to its first allowed CPU and return another one for the
    server (None, and no pinning, on a single-CPU machine)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    os.sched_setaffinity(0, {cpus[0]})
    return cpus[1]


class TruthServer:
    """The server in a child process: ``with TruthServer(cfg) as srv: srv.base_url``.

    ``cpu`` pins the child to one CPU, so a client pinned elsewhere has its own core.
    The child exits when it is terminated or when this process goes away.
    """

    def __init__(self, cfg: TruthConfig | None = None, cpu: int | None = None) -> None:
        self.cfg = cfg or TruthConfig()
        self.cpu = cpu
        self.base_url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> TruthServer:
        args = [
            sys.executable,
            "-m",
            "spark_harness_testkit.groundtruth",
            "--parent",
            str(os.getpid()),
        ]
        for f in fields(TruthConfig):
            args += [f"--{f.name.replace('_', '-')}", str(getattr(self.cfg, f.name))]
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        if self.cpu is not None:
            os.sched_setaffinity(self._proc.pid, {self.cpu})
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], 30.0)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.__exit__()
            raise RuntimeError(f"ground-truth server did not start (said {line!r})")
        self.base_url = line.split()[1]
        return self

    def cpu_s(self) -> float:
        """The server process's CPU seconds so far (a benchmark shows with it whether
        the server or the client was the limit)."""
        assert self._proc is not None
        t = psutil.Process(self._proc.pid).cpu_times()
        return t.user + t.system

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def truth(self, clear: bool = False) -> dict[str, dict[str, Any]]:
        """Stamps by request id; ``clear`` empties the server's table."""
        url = self.base_url + "/truth" + ("?clear=1" if clear else "")
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())


class WallClockWatch:
    """How far the wall clock moved against the monotonic clock over a ``with`` block.

    Both sides' kernel stamps are wall-clock times moved onto the monotonic clock, so a
    step of the wall clock (a time daemon's correction, which some CI machines make
    mid-run) shifts a stamp converted across it by up to the step: comparisons of
    client and truth allow ``moved_ms`` more (0 where the clock held still)."""

    moved_ms = 0.0

    def __enter__(self) -> WallClockWatch:
        self._start = kstamp.measure_wall_offset_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.moved_ms = abs(kstamp.measure_wall_offset_ns() - self._start) / 1e6


def compare(
    records: list[dict[str, Any]], truth: dict[str, dict[str, Any]]
) -> list[dict[str, float | None]]:
    """For each successful record the server saw: the client's TTFT and TPOT beside the
    truth (``ttft_ms``, ``true_ttft_ms``, ``tpot_ms``, ``true_tpot_ms``), the server's
    own lateness in writing the first token (``server_late_ms``), how long that write took
    (``server_write_ms``), whether the kernel stamped the request's arrival
    (``true_recv_kernel``; else the truth's start is its read's, late) and the record's
    ``sent_bound_ms`` and ``first_token_bound_ms``."""
    out: list[dict[str, float | None]] = []
    for r in records:
        t = truth.get(r["request_id"])
        if not r["ok"] or t is None or not t["events_ns"]:
            continue
        ev = t["events_ns"]
        tokens_after_first = sum(t["event_tokens"]) - 1
        out.append(
            {
                "ttft_ms": r["ttft_ms"],
                "true_ttft_ms": (ev[0] - t["recv_ns"]) / 1e6,
                "tpot_ms": r["tpot_ms"],
                "true_tpot_ms": (ev[-1] - ev[0]) / 1e6 / tokens_after_first
                if tokens_after_first > 0
                else None,
                "server_late_ms": t["late_ns"][0] / 1e6,
                "server_write_ms": (t["written_ns"][0] - ev[0]) / 1e6,
                "true_recv_kernel": t.get("recv_kernel"),
                "sent_bound_ms": r.get("sent_bound_ms"),
                "first_token_bound_ms": r.get("first_token_bound_ms"),
            }
        )
    return out


async def _main_async(cfg: TruthConfig, port: int, parent: int | None) -> None:
    runner = web.ServerRunner(_Server(cfg).server(), shutdown_timeout=0.5)
    sock = await _start(runner, port)
    print(f"READY http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    try:
        while parent is None or os.getppid() == parent:
            await asyncio.sleep(0.5)
    finally:
        await runner.cleanup()


_PARSERS: dict[type, Any] = {
    bool: lambda s: s.lower() in ("1", "true", "yes"),
    int: int,
    float: float,
    str: str,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent", type=int, help="exit when this process is gone")
    for f in fields(TruthConfig):
        parse = _PARSERS[type(f.default)]
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=parse, default=f.default)
    args = parser.parse_args(argv)
    cfg = TruthConfig(**{f.name: getattr(args, f.name) for f in fields(TruthConfig)})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main_async(cfg, args.port, args.parent))


if __name__ == "__main__":
    main()
