"""The simulator API under hostile clients (docs/SECURITY.md): every malformed request
a 4xx, never a 500; bodies read under a timeout before a request takes a slot; idle,
slow-header and slow-body connections closed; no hang, no leaked descriptor."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from spark_harness_testkit.httpfuzz import Case, SimThread, cases, exchange, open_fds

FAST = {
    "mode": "tiered",
    "g1_blocks": 256,
    "g2_blocks": 32,
    "g3_blocks": 0,
    "block_tokens": 16,
    "max_num_seqs": 16,
    "body_timeout_s": 0.5,
    "idle_timeout_s": 1.0,
}
JSON = (b"Content-Type", b"application/json")


def post(body: bytes, *headers: tuple[bytes, bytes]) -> Case:
    return Case(
        "POST", "/v1/completions", [JSON, *headers, (b"Content-Length", b"%d" % len(body))], body
    )


def answer(sim: SimThread, case: Case) -> tuple[int, dict]:
    """Status and JSON body of one raw request (the whole answer read)."""
    with socket.create_connection((sim.host, sim.port), 10) as s:
        s.sendall(case.wire())
        s.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "m", "prompt": "a b", "max_tokens": ' + b"9" * 5000 + b"}",
        b"[" * 200_000 + b"]" * 200_000,
        b'{"model": "m", "prompt": "a", "n": ' + b"1" * 4301 + b"}",
    ],
    ids=["5000-digit-max-tokens", "200k-nested", "4301-digit-n"],
)
def test_malformed_bodies_are_a_400_json_error(tmp_path: Path, body: bytes) -> None:
    with SimThread(FAST, tmp_path) as sim:
        status, err = answer(sim, post(body))
    assert status == 400 and err["error"]["type"] == "invalid_request_error"


def test_non_ascii_authorization_is_a_401(tmp_path: Path) -> None:
    with SimThread({**FAST, "api_key": "k3y"}, tmp_path) as sim:
        for value in (
            b"Bearer \xc3\xa9t\xc3\xa9",
            b"Bearer \xff\xfe",
            "Bearer é".encode("latin-1"),
        ):
            status, err = answer(
                sim, post(b'{"model": "m", "prompt": "a"}', (b"Authorization", value))
            )
            assert status == 401 and err["error"]["code"] == "invalid_api_key"


def test_withheld_bodies_hold_no_slot_and_are_cut_off(tmp_path: Path) -> None:
    """Clients that send headers and withhold the body: a legitimate request is still
    served at once, and each withholder gets a 408 after the body timeout."""

    async def scenario(sim: SimThread) -> None:
        body = b'{"model": "m", "prompt": "a b c", "max_tokens": 2}'
        withholders = [
            asyncio.create_task(
                exchange(
                    sim.host,
                    sim.port,
                    Case(
                        "POST",
                        "/v1/completions",
                        [JSON, (b"Content-Length", b"%d" % len(body))],
                        body,
                        "withhold",
                    ),
                    5,
                )
            )
            for _ in range(8)
        ]
        await asyncio.sleep(0.2)  # all eight are waiting for their bodies
        t0 = time.monotonic()
        ok = await exchange(sim.host, sim.port, post(body), 5)
        assert ok.status == 200 and time.monotonic() - t0 < 0.4
        cut = await asyncio.gather(*withholders)
        assert [o.status for o in cut] == [408] * 8

    with SimThread({**FAST, "max_concurrent_requests": 4}, tmp_path) as sim:
        asyncio.run(scenario(sim))


@pytest.mark.parametrize("behaviour", ["idle", "slow-headers", "idle-after-request"])
def test_idle_and_slow_header_connections_are_closed(tmp_path: Path, behaviour: str) -> None:
    with SimThread(FAST, tmp_path) as sim:
        before = open_fds()
        with socket.create_connection((sim.host, sim.port), 5) as s:
            t0 = time.monotonic()
            s.settimeout(0.2)
            if behaviour == "idle-after-request":
                s.sendall(Case("GET", "/health", [], b"").wire())
            closed = False
            while time.monotonic() - t0 < 6:
                if behaviour == "slow-headers":
                    s.sendall(
                        b"X"
                        if time.monotonic() - t0 > 0.01
                        else b"POST /v1/completions HTTP/1.1\r\nX-Slow: "
                    )
                try:
                    data = s.recv(4096)
                except TimeoutError:
                    continue
                except ConnectionError:
                    closed = True
                    break
                if not data:
                    closed = True
                    break
            took = time.monotonic() - t0
        assert closed and took < 4, f"open after {took:.1f} s"
        time.sleep(0.2)
        assert open_fds() <= before


@settings(
    max_examples=int(os.environ.get("SIM_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases(model="m"))
def test_fuzzed_requests_never_get_a_5xx_or_hang(sim: SimThread, case: Case) -> None:
    out = asyncio.run(exchange(sim.host, sim.port, case, limit_s=5))
    assert not out.hung, case
    assert out.status is None or out.status < 500, (out, case)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One simulator for every fuzz example; afterwards the process holds no more
    descriptors than after its first request (every fuzz connection was closed)."""
    with SimThread(FAST, tmp_path_factory.mktemp("fuzz")) as server:
        asyncio.run(exchange(server.host, server.port, Case("GET", "/health", [], b"")))
        before = open_fds()
        yield server
        deadline = time.monotonic() + 5
        while open_fds() > before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert open_fds() <= before


def test_a_client_that_stops_reading_a_stream_loses_it_and_its_slot(tmp_path: Path) -> None:
    """A stream whose client reads nothing fills the socket's buffers; after
    write_timeout_s the server cuts it, so the slot (one here) serves the next client."""
    body = json.dumps(
        {"model": "m", "prompt": "a b c", "max_tokens": 4000, "stream": True}
    ).encode()
    with SimThread(
        {**FAST, "max_concurrent_requests": 1, "write_timeout_s": 0.5, "max_model_len": 8192},
        tmp_path,
    ) as sim:
        # small kernel buffers on both ends (accepted sockets inherit the listener's)
        sim.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        before = open_fds()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(5)
        stalled.connect((sim.host, sim.port))
        stalled.sendall(post(body).wire())  # and never reads
        time.sleep(0.3)
        status, _ = answer(sim, post(b'{"model": "m", "prompt": "a", "max_tokens": 1}'))
        assert status == 429  # the stalled stream holds the only slot ...
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status, _ = answer(sim, post(b'{"model": "m", "prompt": "a", "max_tokens": 1}'))
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200  # ... until the write timeout cuts it
        stalled.settimeout(2)
        with pytest.raises((ConnectionError, TimeoutError, OSError)):
            while stalled.recv(1 << 20):  # what was buffered, then the reset
                pass
            raise ConnectionResetError  # an orderly close counts as cut too
        stalled.close()
        time.sleep(0.2)
        assert open_fds() <= before
