"""Hostile input to the simulator's HTTP surface, as properties (hypothesis).

tests/sim/test_api.py posts arbitrary JSON bodies; here: arbitrary headers, the limits
on body size, ``max_tokens``, ``n`` and requests in flight, the loopback bind, and the
API key's constant-time comparison.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark_harness.serving.cli import register as register_serve
from spark_harness.sim import api

from .simclient import SimClient, run, running_sim, words

FAST = {"mode": "uma", "g1_blocks": 256, "block_tokens": 16, "max_num_seqs": 16}
LIMITS = {**FAST, "max_model_len": 128, "max_tokens_limit": 64, "max_request_bytes": 2048}
PROPERTY = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def is_error_object(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and set(body["error"]) == {"message", "type", "param", "code"}
        and isinstance(body["error"]["message"], str)
    )


def check_in_loop(
    sim_cfg: dict[str, Any],
    tmp: Path,
    prop: Callable[[SimClient, Callable[[Coroutine[Any, Any, Any]], Any]], None],
) -> None:
    """Run a hypothesis property (sync) against one simulator served from its own loop."""

    async def scenario() -> None:
        async with running_sim(sim_cfg, tmp) as sim:
            loop = asyncio.get_running_loop()

            def call(coro: Coroutine[Any, Any, Any]) -> Any:
                return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

            await asyncio.to_thread(prop, sim, call)

    run(scenario())


async def post(
    sim: SimClient,
    body: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/completions",
) -> tuple[int, Any]:
    resp = await sim.http.post(
        path, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    raw = await resp.read()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw


# Header names are HTTP tokens, values any visible Latin-1 text (no CR/LF). Framing
# headers are the client library's to set; broken framing is tested on a raw socket.
FRAMING = {"content-length", "transfer-encoding", "connection", "upgrade", "host"}
header_names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20).filter(
    lambda n: n.lower() not in FRAMING
)
header_values = st.text(
    st.characters(min_codepoint=32, max_codepoint=255, exclude_categories=("Cc",)), max_size=60
)
headers = st.dictionaries(header_names, header_values, max_size=6) | st.fixed_dictionaries(
    {"Authorization": header_values, "Content-Type": header_values, "Expect": header_values}
)


def test_arbitrary_headers_never_cause_a_server_error(tmp_path: Path) -> None:
    good = json.dumps({"model": "sim", "prompt": "a b", "max_tokens": 2}).encode()

    @PROPERTY
    @given(h=headers, chat=st.booleans())
    def prop(sim: SimClient, call: Callable[..., Any], h: dict[str, str], chat: bool) -> None:
        path = "/v1/chat/completions" if chat else "/v1/completions"
        status, body = call(post(sim, good, {"Content-Type": "application/json", **h}, path))
        assert status < 500, (h, body)
        if status >= 400:
            assert is_error_object(body), (h, status, body)

    check_in_loop({**FAST, "api_key": "k3y"}, tmp_path, lambda sim, call: prop(sim, call))


RAW_REQUESTS = [
    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n{}",
    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GARBAGE\r\n\r\n",
    b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
]


def test_broken_http_framing_is_a_client_error_and_the_server_goes_on(tmp_path: Path) -> None:
    # aiohttp's parser answers these itself (a plain 400, before any route runs)
    async def scenario() -> None:
        async with running_sim(FAST, tmp_path) as sim:
            for raw in RAW_REQUESTS:
                reader, writer = await asyncio.open_connection(sim.http.host, sim.http.port)
                writer.write(raw)
                await writer.drain()
                status_line = await asyncio.wait_for(reader.readline(), 10)
                writer.close()
                status = int(status_line.split()[1])
                assert 400 <= status < 500, (raw[:60], status_line)
            assert (await sim.generate("a b", max_tokens=1)).status == 200

    run(scenario())


def test_body_size_limit_is_exact(tmp_path: Path) -> None:
    limit = LIMITS["max_request_bytes"]

    @PROPERTY
    @given(size=st.integers(limit - 64, limit + 64))
    def prop(sim: SimClient, call: Callable[..., Any], size: int) -> None:
        head = json.dumps({"model": "sim", "prompt": "a", "max_tokens": 1, "pad": ""})
        body = (head[:-2] + "x" * (size - len(head)) + '"}').encode()
        assert len(body) == size
        status, reply = call(post(sim, body))
        if size > limit:
            assert status == 413 and reply["error"]["code"] == "request_too_large"
        else:
            assert status == 200, reply

    check_in_loop(LIMITS, tmp_path, lambda sim, call: prop(sim, call))


def test_max_tokens_and_n_limits(tmp_path: Path) -> None:
    mt_limit = LIMITS["max_tokens_limit"]

    @PROPERTY
    @given(
        max_tokens=st.integers(-5, 3 * mt_limit) | st.none(),
        n=st.none() | st.integers(-2, 4) | st.booleans() | st.floats(0, 2) | st.just("1"),
    )
    def prop(sim: SimClient, call: Callable[..., Any], max_tokens: int | None, n: Any) -> None:
        req = {"model": "sim", "prompt": "a b", "max_tokens": max_tokens, "n": n}
        status, body = call(post(sim, json.dumps(req).encode()))
        n_ok = n is None or (type(n) is int and n == 1)
        mt_ok = max_tokens is None or 1 <= max_tokens <= mt_limit
        if n_ok and mt_ok:
            assert status == 200, (req, body)
            assert body["usage"]["completion_tokens"] <= (max_tokens or 16)
        else:
            assert status == 400 and is_error_object(body), (req, body)
            assert body["error"]["param"] in ({"n"} if not n_ok else set()) | (
                {"max_tokens"} if not mt_ok else set()
            )

    check_in_loop(LIMITS, tmp_path, lambda sim, call: prop(sim, call))


def test_requests_in_flight_are_capped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_sim({**FAST, "max_concurrent_requests": 2}, tmp_path) as sim:
            long = {"model": "sim", "prompt": words(8), "max_tokens": 100, "stream": True}
            open_streams = []
            for _ in range(2):
                resp = await sim.http.post("/v1/completions", json=long)
                assert resp.status == 200
                await resp.content.readline()  # in flight: the first event arrived
                open_streams.append(resp)
            status, body = await post(sim, json.dumps(long).encode())
            assert status == 429 and is_error_object(body)
            assert body["error"]["code"] == "too_many_concurrent_requests"
            # reads are not generation requests: health and metrics still answer
            assert (await sim.http.get("/health")).status == 200
            open_streams.pop().close()  # a client goes away: its slot frees
            for _ in range(100):
                await asyncio.sleep(0.01)
                status, _ = await post(sim, json.dumps({**long, "stream": False}).encode())
                if status == 200:
                    break
            assert status == 200
            for resp in open_streams:
                resp.close()

    run(scenario())


def test_api_key_is_compared_in_constant_time(tmp_path: Path, monkeypatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = api.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api.hmac, "compare_digest", spy)

    @PROPERTY
    @given(given_key=header_values | st.just("s3cret") | st.just("s3cre"))
    def prop(sim: SimClient, call: Callable[..., Any], given_key: str) -> None:
        calls.clear()
        header = "Bearer " + given_key
        status, body = call(
            post(
                sim, b'{"model": "sim", "prompt": "a", "max_tokens": 1}', {"Authorization": header}
            )
        )
        assert status == (200 if given_key == "s3cret" else 401), body
        # every check, right or wrong, prefix or not, goes through compare_digest
        assert len(calls) == 1 and calls[0][1] == b"s3cret"

    check_in_loop({**FAST, "api_key": "s3cret"}, tmp_path, lambda sim, call: prop(sim, call))


def test_servers_bind_loopback_by_default(tmp_path: Path, repo_root: Path) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    register_serve(parser.add_subparsers())
    args = parser.parse_args(["serve", "--stack", "x.yaml"])
    assert args.host == "127.0.0.1"

    cmd = [sys.executable, "-m", "spark_harness.sim", "--stack"]
    cmd += [str(repo_root / "config/stacks/sim-uma.yaml"), "--workdir", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=repo_root)
    try:
        assert proc.stdout is not None
        bound = json.loads(proc.stdout.readline())
        assert bound["host"] == "127.0.0.1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("value", [0, -1, True, "8"])
def test_a_bad_concurrency_limit_is_a_startup_error(value: Any) -> None:
    from spark_harness.sim.config import SimConfig, SimConfigError

    with pytest.raises(SimConfigError, match="max_concurrent_requests"):
        SimConfig.from_sim({**FAST, "max_concurrent_requests": value})
