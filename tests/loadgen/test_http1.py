"""The load generator's own HTTP/1.1 client against scripted servers: connection reuse,
the server's closes, bodies that are not chunked, malformed responses, and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from spark_harness.clock import Clock
from spark_harness.loadgen.client import Client
from spark_harness.loadgen.record import Attempt, make_record
from spark_harness.tokens import count_text
from spark_harness.workloads import Request

from .conftest import endpoint

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def event(obj: object) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


EVENTS = [event({"choices": [{"text": w}]}) for w in ("a", " b", " c")] + [event(b"[DONE]")]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request (head and sized body); False at the connection's end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    size = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(size)
    return True


async def stream_chunked(writer: asyncio.StreamWriter, gap_s: float = 0.0) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for ev in EVENTS:
        await asyncio.sleep(gap_s)
        writer.write(chunk(ev))
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


@contextlib.asynccontextmanager
async def scripted(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A server on 127.0.0.1 running ``handler`` per connection; yields its base URL.
    ``connections`` counts the connections it accepted."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        scripted.connections += 1  # type: ignore[attr-defined]
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    scripted.connections = 0  # type: ignore[attr-defined]
    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    try:
        async with server:
            yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        server.close()


async def send_all(url: str, n: int, pause_s: float = 0.0, timeout_s: float = 5.0) -> list:
    """``n`` requests one after another on one client; their records."""
    out = []
    async with Client(endpoint(url), connections=1, timeout_s=timeout_s) as client:
        for i in range(n):
            if i and pause_s:
                await asyncio.sleep(pause_s)
            att = Attempt(request_id=f"r{i}", phase="load", ready_ns=time.monotonic_ns())
            await client.send(Request("a b c", 3, 3), att)
            out.append(make_record(att, Clock.start(), count_text)[0])
    return out


def records_from(handler: Handler, n: int, tls: ssl.SSLContext | None = None, **kw: float) -> list:
    """The records of ``n`` requests (:func:`send_all`) to a server running ``handler``."""

    async def main() -> list:
        async with scripted(handler, tls) as url:
            return await send_all(url, n, **kw)

    return asyncio.run(main())


def test_a_kept_alive_connection_carries_the_next_requests() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader):
            await stream_chunked(writer)

    recs = records_from(handler, 3)
    assert [r["ok"] for r in recs] == [True] * 3, recs
    assert scripted.connections == 1  # type: ignore[attr-defined]


def test_a_connection_the_server_ends_is_not_reused() -> None:
    """``Connection: close`` on a sized body, and a close while the connection is idle
    (a keep-alive timeout): each next request goes out on a new connection."""
    body = b"".join(EVENTS)

    async def close_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        await asyncio.sleep(0.5)  # the client closes first, as the header told it

    async def idle_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await stream_chunked(writer)
        await asyncio.sleep(0.01)  # then the server's keep-alive time runs out

    async def main() -> tuple[list, list]:
        async with scripted(close_header) as url:
            first = await send_all(url, 2)
        async with scripted(idle_close) as url:
            second = await send_all(url, 2, pause_s=0.1)
        return first, second

    first, second = asyncio.run(main())
    assert [r["ok"] for r in first + second] == [True] * 4, first + second
    assert scripted.connections == 2  # type: ignore[attr-defined]


def test_a_request_on_a_connection_the_server_closed_unannounced_goes_again_on_a_new_one() -> None:
    """A server that closes after each response without ``Connection: close``: the next
    request, already written on the kept-alive connection, gets no byte back; it is sent
    again once on a new connection, not counted as the server's failure."""

    async def close_after(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await stream_chunked(writer)
        await asyncio.sleep(0.05)  # the client's next request arrives, unanswered

    recs = records_from(close_after, 3)
    assert [r["ok"] for r in recs] == [True] * 3, recs
    assert scripted.connections == 3  # type: ignore[attr-defined]


def test_a_request_dropped_after_it_reached_the_server_is_not_sent_again() -> None:
    """A kept-alive connection lost well after the request was written, with no byte
    back (a worker that died during prefill, a proxy's read timeout), may have been
    worked on: the request fails (reset), never goes twice."""

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await stream_chunked(writer)
        await read_request(reader)
        await asyncio.sleep(0.3)  # working on it, then gone

    recs = records_from(drop, 2)
    assert recs[0]["ok"] and recs[1]["error_kind"] == "reset", recs[1]
    assert scripted.connections == 1  # type: ignore[attr-defined]


def test_a_connection_lost_after_part_of_a_response_is_not_sent_again() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await stream_chunked(writer)  # the first answer is whole, the second cut short
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
        await writer.drain()

    recs = records_from(cut, 2)
    assert recs[0]["ok"]
    assert recs[1]["error_kind"] == "reset", recs[1]
    assert scripted.connections == 1  # type: ignore[attr-defined]


def test_a_sized_event_stream_is_stamped_per_read() -> None:
    body = b"".join(EVENTS)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        for ev in EVENTS:
            await asyncio.sleep(0.03)
            writer.write(ev)
            await writer.drain()

    async def main() -> list:
        async with scripted(handler) as url:
            return await send_all(url, 1)

    (rec,) = asyncio.run(main())
    assert rec["ok"], rec["error"]
    assert 25 < rec["ttft_ms"] < 60
    assert all(20 < b - a < 45 for a, b in itertools.pairwise(rec["event_offsets_ms"]))


@pytest.mark.parametrize(
    "response",
    [b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", b"SMTP ready\r\n\r\n"],
)
def test_a_malformed_response_is_an_error_and_the_run_goes_on(response: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(response)
        await writer.drain()
        await asyncio.sleep(0.5)

    recs = records_from(handler, 2, timeout_s=2.0)
    assert [(r["ok"], r["error_kind"]) for r in recs] == [(False, "other")] * 2
    assert all(r["error"].startswith("malformed HTTP response") for r in recs)


def test_a_server_that_streams_on_is_cut_at_the_body_bound_and_the_run_goes_on(
    monkeypatch,
) -> None:
    """A server that ignores max_tokens and streams without end, and one whose head never
    ends: each request fails at its bound (not at its timeout, after the server's bytes
    filled memory; the handlers stop at 45 and 40 MB), its connection is closed, and a
    next request on a sound connection is measured."""
    monkeypatch.setattr("spark_harness.loadgen.http1.MIN_BODY_BYTES", 64 << 10)
    sent = {"endless": 0, "head": 0}
    filler = event({"choices": [{"text": " x" * 100}]})

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader):
            if scripted.connections > 1:  # type: ignore[attr-defined]
                await stream_chunked(writer)  # the second connection: a sound reply
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                for _ in range(200_000):  # bounded: ~45 MB
                    writer.write(chunk(filler))
                    sent["endless"] += len(filler)
                    await writer.drain()
            return

    async def endless_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Filler: ")
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            for _ in range(40_000):  # bounded: ~40 MB of one header
                writer.write(b"y" * 1024)
                sent["head"] += 1024
                await writer.drain()

    async def main() -> tuple[list, list]:
        async with scripted(endless) as url:
            body = await send_all(url, 2, timeout_s=10.0)
        async with scripted(endless_head) as url:
            head = await send_all(url, 1, timeout_s=10.0)
        return body, head

    body, head = asyncio.run(main())
    first, second = body
    assert (first["ok"], first["error_kind"]) == (False, "other")
    assert first["error"].startswith("response body over 65536 bytes")
    assert second["ok"], second["error"]  # a new connection: the cut one was closed
    # the server was stopped long before its 45 MB (what it sent past the bound filled
    # the loopback's socket buffers, a few MB, not the client's memory)
    assert sent["endless"] < 16 << 20
    (rec,) = head
    assert (rec["ok"], rec["error_kind"]) == (False, "other")
    assert rec["error"] == "response head over 65536 bytes"
    assert sent["head"] < 16 << 20


def test_the_body_bound_grows_with_the_tokens_asked() -> None:
    from spark_harness.loadgen.http1 import BODY_BYTES_PER_TOKEN, MIN_BODY_BYTES, body_limit

    assert body_limit(None) == body_limit(1) == MIN_BODY_BYTES
    assert body_limit(4096) == 4096 * BODY_BYTES_PER_TOKEN > 300 * 4096


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_a_stream_over_tls_is_stamped_piece_by_piece(tls_files, monkeypatch) -> None:
    cert, key = tls_files
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server only
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await read_request(reader):
            await stream_chunked(writer, gap_s=0.03)

    recs = records_from(handler, 2, tls=server_tls)
    assert [r["ok"] for r in recs] == [True] * 2, recs
    assert scripted.connections == 1  # type: ignore[attr-defined]
    for rec in recs:
        assert 25 < rec["ttft_ms"] < 60 and rec["completion_tokens_client"] == 3
        assert all(20 < b - a < 45 for a, b in itertools.pairwise(rec["event_offsets_ms"]))


def test_an_untrusted_tls_server_is_a_connect_error(tls_files) -> None:
    cert, key = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async def main() -> list:
        async with scripted(handler, server_tls) as url:
            return await send_all(url, 1)

    (rec,) = asyncio.run(main())
    assert (rec["ok"], rec["error_kind"]) == (False, "connect")
    assert "CERTIFICATE_VERIFY_FAILED" in rec["error"]
