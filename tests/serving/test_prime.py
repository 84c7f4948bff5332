"""Priming a ready server: waves of requests at once, the next after the last answer, and a
failure that names what went wrong (serving/prime.py), through the load generator's
client."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from spark_harness.contract import Endpoint
from spark_harness.serving.prime import PrimeFailed, prime

STREAM = b'data: {"choices": [{"index": 0, "text": "x"}]}\n\ndata: [DONE]\n\n'
FIRST_REQUEST_S = 0.3  # a compilation on the first request, as vLLM's on the CPU
EACH_REQUEST_S = 0.1


class Engine(ThreadingHTTPServer):
    """Answers completions after a delay, the first one later; records what it saw."""

    daemon_threads = True

    def __init__(self, fail_from: int | None = None, stall_s: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.seen: list[dict] = []  # body, headers, arrival, the most in flight with it
        self.active: set[int] = set()  # the requests in flight
        self.fail_from = fail_from  # answer 500 from this request on
        self.stall_s = stall_s


class Handler(BaseHTTPRequestHandler):
    server: Engine

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            n = len(srv.seen)
            srv.seen.append(
                {"path": self.path, "body": body, "auth": self.headers.get("Authorization"),
                 "t": time.monotonic(), "inflight": 0}
            )  # fmt: skip
            srv.active.add(n)
            for i in srv.active:  # the most requests in flight while each one was
                srv.seen[i]["inflight"] = max(srv.seen[i]["inflight"], len(srv.active))
        time.sleep(srv.stall_s or (FIRST_REQUEST_S if n == 0 else EACH_REQUEST_S))
        with srv.lock:
            srv.active.discard(n)
        failing = srv.fail_from is not None and n >= srv.fail_from
        reply = b"engine exploded" if failing else STREAM
        self.send_response(500 if failing else 200)
        self.send_header("Content-Type", "text/plain" if failing else "text/event-stream")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(engine: Engine, key_env: str | None = None) -> Iterator[Endpoint]:
    threading.Thread(target=engine.serve_forever, daemon=True).start()
    try:
        yield Endpoint(
            stack="A",
            kind="external",
            base_url=f"http://127.0.0.1:{engine.server_address[1]}/v1",
            model="tiny",
            pid=0,
            extra={"api_key_env": key_env} if key_env else {},
        )
    finally:
        engine.shutdown()
        engine.server_close()


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
def ep(engine: Engine) -> Iterator[Endpoint]:
    with serving(engine, key_env="SH_PRIME_TEST_KEY") as ep:
        yield ep


def test_waves_go_at_once_one_after_another(engine, ep, monkeypatch) -> None:
    monkeypatch.setenv("SH_PRIME_TEST_KEY", "k-4711")
    done = prime(ep, [1, 2, 3], max_tokens=3)
    assert [w["requests"] for w in done["waves"]] == [1, 2, 3]
    seen = engine.seen
    assert len(seen) == 6 and {s["path"] for s in seen} == {"/v1/completions"}
    # each wave's requests in flight together, and no wave before the last one answered
    assert [s["inflight"] for s in seen] == [1, 2, 2, 3, 3, 3]
    assert seen[1]["t"] - seen[0]["t"] >= FIRST_REQUEST_S
    assert seen[3]["t"] - max(seen[1]["t"], seen[2]["t"]) >= EACH_REQUEST_S
    # the first wave held the first request's compilation: its time is in the record
    assert done["waves"][0]["seconds"] >= FIRST_REQUEST_S
    assert all(w["seconds"] >= EACH_REQUEST_S for w in done["waves"])
    bodies = [s["body"] for s in seen]
    assert {b["model"] for b in bodies} == {"tiny"} and {b["max_tokens"] for b in bodies} == {3}
    assert all(b["stream"] for b in bodies)  # the load generator's request, as the load's
    # a prompt of its own each: a prefix cache cannot answer one from another
    assert len({b["prompt"] for b in bodies}) == 6
    assert {s["auth"] for s in seen} == {"Bearer k-4711"}


def test_an_error_answer_fails_with_the_wave_and_the_body() -> None:
    with (
        serving(Engine(fail_from=2)) as ep,
        pytest.raises(PrimeFailed, match=r"wave 1 \(2 at once\).*HTTP 500: engine exploded"),
    ):
        prime(ep, [1, 2, 1])


def test_a_request_past_its_timeout_fails() -> None:
    with serving(Engine(stall_s=2.0)) as ep:
        t0 = time.monotonic()
        with pytest.raises(PrimeFailed, match=r"wave 0 .*no complete response within 0.3 s"):
            prime(ep, [1], timeout_s=0.3)
        assert time.monotonic() - t0 < 1.5


def test_nothing_listening_fails_clearly() -> None:
    engine = Engine()
    port = engine.server_address[1]
    engine.server_close()
    ep = Endpoint(stack="A", kind="external", base_url=f"http://127.0.0.1:{port}", model="m", pid=0)
    with pytest.raises(PrimeFailed, match=r"wave 0 .*cannot connect"):
        prime(ep, [1], timeout_s=1.0)
