"""Reading a server's own metrics endpoint (Prometheus text or TensorRT-LLM JSON).

A server's metrics endpoint is usually not up when the sidecar starts (the server is
still loading), so failed scrapes are retried every tick. Only if a source has never
answered within the server's start-up timeout is it recorded as unavailable, and even
then scraping goes on: a late answer still becomes data.

TensorRT-LLM's JSON ``/metrics`` waits up to :data:`TRTLLM_STATS_WAIT_S` for an entry
when none is queued and hands each entry out once: a client that gives up at that wait
makes the server drop what the read took. Its reads therefore get a timeout well past
the wait (the sidecar never starts a second read while one is in flight), and
:class:`~spark_harness.telemetry.mapping.TrtllmState` counts any entries lost anyway.

A body over :data:`MAX_BODY_BYTES` is a failed scrape (a broken endpoint must not fill
the sidecar's memory, which also holds the point's samples): read no further than that.
"""

from __future__ import annotations

import json
import time

import aiohttp

from spark_harness.contract import MetricsSource
from spark_harness.telemetry.mapping import TrtllmState, map_prometheus
from spark_harness.telemetry.sampler import AsyncSampler, Fields

FORMATS = ("prometheus", "trtllm-json")
#: how long trtllm-serve's ``/metrics`` waits for the next stats entry
#: (``get_stats_async(2)`` in its ``openai_server.py``)
TRTLLM_STATS_WAIT_S = 2.0
#: a TensorRT-LLM read's timeout beyond that wait: serialization on a busy server
TRTLLM_MARGIN_S = 3.0
#: the most one scrape reads: vLLM's exposition with every histogram is a few hundred KB
MAX_BODY_BYTES = 32 << 20


class ExpositionTooLarge(ValueError):
    """A metrics body over :data:`MAX_BODY_BYTES`."""


async def read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The response's body, or :class:`ExpositionTooLarge` once it passes ``limit``."""
    body = bytearray()
    async for piece in resp.content.iter_chunked(64 << 10):
        body += piece
        if len(body) > limit:
            raise ExpositionTooLarge(f"{resp.url}: metrics body over {limit} bytes")
    return bytes(body)


class MetricsSampler(AsyncSampler):
    """Canonical fields from one metrics endpoint of the server."""

    def __init__(self, source: MetricsSource, timeout_s: float, grace_s: float) -> None:
        super().__init__()
        if source.format not in FORMATS:
            raise ValueError(
                f"metrics source {source.url}: format {source.format!r} is not one of {FORMATS}"
            )
        self.name = f"metrics:{source.source}"
        self.source = source
        if source.format == "trtllm-json":
            timeout_s = max(timeout_s, TRTLLM_STATS_WAIT_S + TRTLLM_MARGIN_S)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._grace_s = grace_s
        self._t0 = time.monotonic()
        self._answered = False
        self._declared = False
        self._trtllm = TrtllmState() if source.format == "trtllm-json" else None
        self._session: aiohttp.ClientSession | None = None

    async def sample(self) -> Fields:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(self.source.url) as resp:
                resp.raise_for_status()
                body = await read_bounded(resp, MAX_BODY_BYTES)
                if self._trtllm is None:
                    fields = map_prometheus(body.decode("utf-8", "replace"))  # the format is UTF-8
                else:
                    fields = self._trtllm.update(json.loads(body))
        except Exception as e:
            waited = time.monotonic() - self._t0
            if not self._answered and not self._declared and waited > self._grace_s:
                self._declared = True
                self.absent(
                    self.name,
                    f"{self.source.url} gave no metrics within {self._grace_s:.0f} s "
                    f"(still retried): {type(e).__name__}: {e}",
                )
            raise
        self._answered = True
        return fields

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
