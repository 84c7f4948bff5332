"""Prime a ready server: a few requests before anything is measured.

Some engines do work on their first requests that no later request repeats. vLLM on the
CPU compiles its sampler's kernels (torch inductor) on the first request and again on
the first step that samples two sequences at once: 11.5 s and 1.1 s on a machine that
has never run it, 1.5 s and 0.1 s for every later engine, which loads them from the
cache. A time-bounded warm-up cannot promise to hold that: the load window's first
requests would wait behind a compilation. A stack that declares ``prime`` gets its
waves of requests (each wave's requests sent at once, the next wave after the last
answer) once it is ready and before the idle baseline, so the point starts on an engine
in its steady state; the seconds each wave took go into the run's record.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from spark_harness.contract import Endpoint
from spark_harness.loadgen.client import api_url
from spark_harness.secrets import endpoint_api_key

#: an answer's body quoted in the error when a priming request fails
ERROR_BODY_CHARS = 300


class PrimeFailed(RuntimeError):
    """A priming request got no answer, or an error: the server is not fit to measure."""


def _complete(url: str, body: bytes, api_key: str | None, timeout_s: float) -> None:
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        text = e.read()[:ERROR_BODY_CHARS].decode(errors="replace")
        raise PrimeFailed(f"HTTP {e.code}: {text}") from e
    except (OSError, urllib.error.URLError) as e:
        raise PrimeFailed(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from e


def prime(ep: Endpoint, waves: list[int], max_tokens: int = 2, timeout_s: float = 120.0) -> dict:
    """Send ``waves`` of completions to ``ep`` (one wave's requests at once, each with its
    own prompt, so a prefix cache cannot answer one from another); return what each wave
    took. Raise :class:`PrimeFailed` on the first request that fails or times out."""
    url = api_url(ep.base_url, chat=False)
    api_key = endpoint_api_key(ep.extra)
    out: list[dict[str, Any]] = []
    for w, width in enumerate(waves):
        prompts = [f"prime wave {w} request {i}" for i in range(width)]
        bodies = [
            json.dumps({"model": ep.model, "prompt": p, "max_tokens": max_tokens}).encode()
            for p in prompts
        ]
        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=width) as pool:
            try:
                list(pool.map(lambda b: _complete(url, b, api_key, timeout_s), bodies))
            except PrimeFailed as e:
                raise PrimeFailed(f"priming wave {w} ({width} at once) failed: {e}") from e
        out.append({"requests": width, "seconds": round(time.monotonic() - t0, 3)})
    return {"waves": out, "max_tokens": max_tokens}
