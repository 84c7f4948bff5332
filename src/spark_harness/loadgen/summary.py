"""Summaries of request records: percentiles, throughput, goodput under SLOs.

Conventions (the analysis relies on them):

- latency percentiles (TTFT, TPOT, E2E) are over successful requests of the phase;
  client-side waits (queue, schedule lag) over every request that was sent;
- throughput counts successful requests of the phase per second of the phase's window
  (``window``: ``[start_ns, end_ns]`` as ``run_load`` returns it);
- goodput counts successful requests meeting every SLO given (``ttft_ms``, ``tpot_ms``,
  ``e2e_ms``; a request without a TPOT, i.e. one output token, passes the TPOT SLO);
- percentiles interpolate linearly between order statistics (numpy's default).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

PERCENTILES = (50, 90, 95, 99)
LATENCIES = ("ttft_ms", "tpot_ms", "e2e_ms", "e2e_incl_queue_ms")
CLIENT_WAITS = ("queue_ms", "schedule_lag_ms")
SLO_KEYS = ("ttft_ms", "tpot_ms", "e2e_ms")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values`` by linear interpolation."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def describe(values: Sequence[float], name: str) -> dict[str, float | None]:
    """``{base}_p50_ms ... _p99_ms, _mean_ms, _max_ms`` for ``name`` = ``{base}_ms``."""
    base, unit = name.rsplit("_", 1)
    out: dict[str, float | None] = {
        f"{base}_p{q}_{unit}": percentile(values, q) for q in PERCENTILES
    }
    out[f"{base}_mean_{unit}"] = sum(values) / len(values) if values else None
    out[f"{base}_max_{unit}"] = max(values) if values else None
    return out


def meets_slo(rec: Mapping[str, Any], slo: Mapping[str, float]) -> bool:
    """A successful request within every SLO limit given."""
    if not rec.get("ok"):
        return False
    for key in SLO_KEYS:
        limit = slo.get(key)
        value = rec.get(key)
        if limit is not None and value is not None and value > limit:
            return False
        if limit is not None and value is None and key != "tpot_ms":
            return False
    return True


def summarize(
    records: Iterable[Mapping[str, Any]],
    phase: str = "load",
    window: Sequence[int] | None = None,
    slo: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The summary of the records sent in ``phase``."""
    recs = [r for r in records if r.get("phase") == phase]
    ok = [r for r in recs if r.get("ok")]
    sent = [r for r in recs if r.get("sent_ns") is not None]
    if window is not None:
        duration_s = (window[1] - window[0]) / 1e9
    elif sent:
        duration_s = (max(r["sent_ns"] for r in sent) - min(r["sent_ns"] for r in sent)) / 1e9
    else:
        duration_s = 0.0

    def per_s(n: float) -> float | None:
        return n / duration_s if duration_s > 0 else None

    errors = Counter(r.get("error_kind") or "other" for r in recs if not r.get("ok"))
    good = [r for r in ok if meets_slo(r, slo or {})]
    out_tokens = sum(
        r.get("completion_tokens") or r.get("completion_tokens_client") or 0 for r in ok
    )
    in_tokens = sum(r.get("prompt_tokens") or r.get("prompt_tokens_client") or 0 for r in ok)
    summary: dict[str, Any] = {
        "phase": phase,
        "duration_s": duration_s,
        "requests": len(recs),
        "ok": len(ok),
        "errors": len(recs) - len(ok),
        "error_rate": (len(recs) - len(ok)) / len(recs) if recs else None,
        "errors_by_kind": dict(errors),
        "send_rate": per_s(len(sent)),
        "request_throughput": per_s(len(ok)),
        "output_token_throughput": per_s(out_tokens),
        "input_token_throughput": per_s(in_tokens),
        "goodput": per_s(len(good)),
        "goodput_fraction": len(good) / len(recs) if recs else None,
    }
    for key in LATENCIES:
        summary.update(describe([r[key] for r in ok if r.get(key) is not None], key))
    for key in CLIENT_WAITS:
        summary.update(describe([r[key] for r in sent if r.get(key) is not None], key))
    diffs = [
        r["prompt_tokens"] - r["prompt_tokens_client"]
        for r in ok
        if r.get("prompt_tokens") is not None and r.get("prompt_tokens_client") is not None
    ]
    summary["prompt_tokens_error_mean"] = sum(diffs) / len(diffs) if diffs else None
    summary["prompt_tokens_error_max_abs"] = max(map(abs, diffs)) if diffs else None
    return summary
