"""Scraping a live metrics endpoint on 127.0.0.1: Prometheus text written by
prometheus-client (as the simulator and vLLM do), TensorRT-LLM's consumed-on-read JSON,
and a server whose endpoint is not up yet."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from spark_harness.contract import MetricsSource
from spark_harness.telemetry.scrape import MetricsSampler

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture
def live_exposition() -> Iterator[tuple[str, dict[str, object]]]:
    """A prometheus-client registry with simulator-style metrics, served on 127.0.0.1."""
    reg = CollectorRegistry()
    metrics = {
        "usage": Gauge("vllm:kv_cache_usage_perc", "G1 usage", ["model_name"], registry=reg),
        "running": Gauge("vllm:num_requests_running", "running", ["model_name"], registry=reg),
        "g3": Counter("kvbm_onboard_blocks_d2d", "G3 onboards", registry=reg),
        "fetch": Histogram("sim_kv_g3_fetch_seconds", "G3 fetch", registry=reg),
    }
    server, thread = start_http_server(0, addr="127.0.0.1", registry=reg)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics", metrics
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_live_prometheus_client_exposition(live_exposition: tuple[str, dict]) -> None:
    url, m = live_exposition

    async def scenario() -> list[dict]:
        s = MetricsSampler(MetricsSource(url=url, source="sim"), timeout_s=2.0, grace_s=5.0)
        out = []
        try:
            m["usage"].labels("sim-llama").set(0.5)
            m["running"].labels("sim-llama").set(3)
            out.append(await s.sample())
            m["g3"].inc(7)
            m["fetch"].observe(0.004)
            m["fetch"].observe(0.006)
            m["usage"].labels("sim-llama").set(0.75)
            out.append(await s.sample())
        finally:
            await s.aclose()
        return out

    first, second = asyncio.run(scenario())
    assert first["kv_g1_usage"] == 0.5 and first["kv_running"] == 3
    assert first["kv_onboard_blocks_g3"] == 0 and first["kv_g3_fetch_seconds_count"] == 0
    assert second["kv_g1_usage"] == 0.75
    assert second["kv_onboard_blocks_g3"] == 7
    assert second["kv_g3_fetch_seconds_count"] == 2
    assert second["kv_g3_fetch_seconds_sum"] == pytest.approx(0.010)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_not_up_yet_is_retried_and_declared_only_after_the_grace() -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"

    async def scenario() -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict]:
        s = MetricsSampler(MetricsSource(url=url, source="kvbm"), timeout_s=1.0, grace_s=0.3)
        try:
            with pytest.raises(aiohttp.ClientConnectorError):  # refused: still starting
                await s.sample()
            early = s.take_absent()
            await asyncio.sleep(0.4)
            with pytest.raises(aiohttp.ClientConnectorError):
                await s.sample()
            late = s.take_absent()
            with pytest.raises(aiohttp.ClientConnectorError):
                await s.sample()
            assert s.take_absent() == []  # declared once
            # the server finally comes up: its metrics still become data
            app = web.Application()
            text = (FIX / "kvbm.prom").read_text()

            async def metrics(_: web.Request) -> web.Response:
                return web.Response(text=text)

            app.router.add_get("/metrics", metrics)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                fields = await s.sample()
            finally:
                await runner.cleanup()
        finally:
            await s.aclose()
        return early, late, fields

    early, late, fields = asyncio.run(scenario())
    assert early == []
    assert len(late) == 1 and late[0][0] == "metrics:kvbm" and "still retried" in late[0][1]
    assert fields["kv_onboard_blocks_g3"] == 12


def test_an_endless_exposition_is_a_failed_scrape_not_the_sidecars_memory(monkeypatch) -> None:
    """A broken endpoint that streams without end: the scrape stops reading at the bound
    and fails (retried next tick, as any failed scrape); a sound body is read whole."""
    monkeypatch.setattr("spark_harness.telemetry.scrape.MAX_BODY_BYTES", 1 << 20)
    text = (FIX / "kvbm.prom").read_text()
    sent = {"bytes": 0}

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            for _ in range(10_000):  # bounded: ~100 MB
                await resp.write(b"# filler " + b"x" * 10_000 + b"\n")
                sent["bytes"] += 10_010
        return resp

    async def sound(_: web.Request) -> web.Response:
        return web.Response(text=text)

    async def scenario() -> tuple[str, dict]:
        app = web.Application()
        app.router.add_get("/endless", endless)
        app.router.add_get("/metrics", sound)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        bad = MetricsSampler(MetricsSource(url=f"{base}/endless", source="kvbm"), 10.0, 5.0)
        good = MetricsSampler(MetricsSource(url=f"{base}/metrics", source="kvbm"), 10.0, 5.0)
        try:
            with pytest.raises(ValueError, match="metrics body over 1048576 bytes") as err:
                await bad.sample()
            return str(err.value), await good.sample()
        finally:
            await bad.aclose()
            await good.aclose()
            await runner.cleanup()

    message, fields = asyncio.run(scenario())
    assert "/endless" in message
    assert sent["bytes"] < 32 << 20  # stopped long before the handler's 100 MB
    assert fields["kv_onboard_blocks_g3"] == 12


def test_live_trtllm_json_is_consumed_on_read() -> None:
    polls = json.loads((FIX / "trtllm_polls.json").read_text())

    async def scenario() -> list[dict]:
        queue = [e for poll in polls for e in poll]
        pending: list[dict] = []

        async def metrics(_: web.Request) -> web.Response:
            # like trtllm-serve: hand out what accumulated and forget it
            out = list(pending)
            pending.clear()
            return web.json_response(out)

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        s = MetricsSampler(
            MetricsSource(
                url=f"http://127.0.0.1:{port}/metrics", format="trtllm-json", source="trtllm"
            ),
            timeout_s=2.0,
            grace_s=5.0,
        )
        out = []
        try:
            pending.extend(queue[:2])
            out.append(await s.sample())
            out.append(await s.sample())  # nothing new: consumed by the first read
            pending.extend(queue[2:])
            out.append(await s.sample())
        finally:
            await s.aclose()
            await runner.cleanup()
        return out

    first, idle, third = asyncio.run(scenario())
    assert first["server_iterations"] == 155 and first["kv_running"] == 1
    assert (
        "kv_running" not in idle and idle["kv_prefix_hits_tokens"] == first["kv_prefix_hits_tokens"]
    )
    assert third["server_iterations"] == 161 and third["kv_g1_active_blocks"] == 40


class FakeTrtllmStats:
    """trtllm-serve's ``/metrics`` as upstream serves it: a read with nothing queued waits
    up to 2 s for an entry, takes everything queued, and the server forgets it whether
    or not the answer reaches the client (``respond_s``: a busy server's late answer)."""

    WAIT_S = 2.0

    def __init__(self, respond_s: float = 0.0) -> None:
        self.queued: list[dict] = []
        self.handed_out: list[int] = []
        self.respond_s = respond_s
        self._arrived = asyncio.Event()

    def put(self, entry: dict) -> None:
        self.queued.append(entry)
        self._arrived.set()

    async def handler(self, _: web.Request) -> web.Response:
        if not self.queued:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), self.WAIT_S)
        taken, self.queued = self.queued, []
        self._arrived.clear()
        self.handed_out += [e["iter"] for e in taken]
        await asyncio.sleep(self.respond_s)
        return web.json_response(taken)


def _entry(it: int) -> dict:
    return {"iter": it, "numActiveRequests": 1, "iterLatencyMS": 5.0}


def test_trtllm_read_outlasts_the_servers_2s_wait_and_counts_lost_entries() -> None:
    """At a 200 ms cadence the sidecar passes a 2 s timeout: an entry that arrives late in
    the server's wait must still be delivered, not taken and dropped with the read."""
    fake = FakeTrtllmStats(respond_s=0.3)

    async def scenario() -> tuple[dict, dict]:
        app = web.Application()
        app.router.add_get("/metrics", fake.handler)
        runner = web.AppRunner(app)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{port}/metrics"
        s = MetricsSampler(MetricsSource(url=url, format="trtllm-json", source="trtllm"), 2.0, 5.0)
        try:
            loop = asyncio.get_running_loop()
            loop.call_later(1.9, fake.put, _entry(10))  # late in the 2 s wait
            first = await s.sample()
            # the engine's queue overflowed: iterations 11-13 never reach any reader
            for it in (14, 15):
                fake.put(_entry(it))
            second = await s.sample()
        finally:
            await s.aclose()
            await runner.cleanup()
        return first, second

    first, second = asyncio.run(scenario())
    assert fake.handed_out == [10, 14, 15]
    assert first["server_iterations"] == 11 and first["server_iter_stats_lost"] == 0
    assert second["server_iterations"] == 16 and second["server_iter_stats_lost"] == 3


def test_unknown_format_is_rejected() -> None:
    with pytest.raises(ValueError, match="format"):
        MetricsSampler(MetricsSource(url="http://127.0.0.1:1/", format="xml"), 1.0, 1.0)
