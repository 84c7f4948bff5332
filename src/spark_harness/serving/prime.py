"""Prime a ready server: a few requests before anything is measured.

Some engines do work on their first requests that no later request repeats. vLLM on the
CPU compiles its sampler's kernels (torch inductor) on the first request and again on
the first step that samples two sequences at once: 11.5 s and 1.1 s on a machine that
has never run it, 1.5 s and 0.1 s for every later engine, which loads them from the
cache. A time-bounded warm-up cannot promise to hold that: the load window's first
requests would wait behind a compilation. A stack that declares ``prime`` gets its
waves of requests (each wave's requests sent at once, the next wave after the last
answer) once it is ready and before the idle baseline, so the point starts on an engine
in its steady state; the seconds each wave took go into the run's record. The requests
go through the load generator's own client, as the load's will (streamed, the same
body), and an interrupt cancels them at once.
"""

from __future__ import annotations

import asyncio
import time

from spark_harness import tokens
from spark_harness.contract import Endpoint
from spark_harness.loadgen.client import Client
from spark_harness.loadgen.record import Attempt
from spark_harness.workloads import Request


class PrimeFailed(RuntimeError):
    """A priming request got no answer, or an error: the server is not fit to measure."""


async def _wave(ep: Endpoint, w: int, width: int, max_tokens: int, timeout_s: float) -> None:
    """One wave: ``width`` requests at once, each with its own prompt (a prefix cache
    cannot answer one from another); raise on the first that failed."""
    prompts = [f"prime wave {w} request {i}" for i in range(width)]
    sent = [
        (
            Request(text, max_tokens, tokens.count_text(text)),
            Attempt(request_id=f"prime-{w}-{i}", phase="prime", ready_ns=time.monotonic_ns()),
        )
        for i, text in enumerate(prompts)
    ]
    async with Client(ep, connections=width, timeout_s=timeout_s) as client:
        await asyncio.gather(*(client.send(req, att) for req, att in sent))
    for _, att in sent:
        if att.error_kind is not None or att.status != 200:
            what = att.error or f"HTTP {att.status}"
            raise PrimeFailed(f"priming wave {w} ({width} at once) failed: {what}")


def prime(ep: Endpoint, waves: list[int], max_tokens: int = 2, timeout_s: float = 120.0) -> dict:
    """Send ``waves`` of completions to ``ep``, each wave after the last one's answers;
    return what each took. Raise :class:`PrimeFailed` on a request that failed or timed
    out."""
    out = []
    for w, width in enumerate(waves):
        t0 = time.monotonic()
        asyncio.run(_wave(ep, w, width, max_tokens, timeout_s))
        out.append({"requests": width, "seconds": round(time.monotonic() - t0, 3)})
    return {"waves": out, "max_tokens": max_tokens}
