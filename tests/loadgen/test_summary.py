"""Summaries against hand-computed values."""

from __future__ import annotations

import pytest

from spark_harness.loadgen.summary import meets_slo, percentile, summarize


def rec(ttft: float, tpot: float | None, ok: bool = True, phase: str = "load", **kw) -> dict:
    r = {
        "phase": phase,
        "ok": ok,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "e2e_ms": ttft + 10 * (tpot or 0),
        "e2e_incl_queue_ms": ttft + 10 * (tpot or 0) + 1,
        "queue_ms": 1.0,
        "schedule_lag_ms": None,
        "sent_ns": 0,
        "completion_tokens": 11,
        "completion_tokens_client": 11,
        "prompt_tokens": 100,
        "prompt_tokens_client": 98,
        "error_kind": None if ok else "timeout",
    }
    r.update(kw)
    return r


def test_percentile_interpolates_like_numpy() -> None:
    xs = [4.0, 1.0, 3.0, 2.0]
    assert percentile(xs, 50) == 2.5
    assert percentile(xs, 99) == pytest.approx(3.97)
    assert percentile(xs, 0) == 1.0 and percentile(xs, 100) == 4.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_summary_counts_throughput_goodput_and_percentiles() -> None:
    records = [rec(float(t), 5.0) for t in range(1, 101)]  # TTFT 1..100 ms
    records += [rec(500.0, 5.0), rec(0.0, None, ok=False)]
    records += [rec(1.0, 1.0, phase="warmup")]  # other phases are ignored
    s = summarize(records, window=[0, 2_000_000_000], slo={"ttft_ms": 50, "tpot_ms": 10})
    assert (s["requests"], s["ok"], s["errors"]) == (102, 101, 1)
    assert s["errors_by_kind"] == {"timeout": 1}
    assert s["error_rate"] == pytest.approx(1 / 102)
    assert s["duration_s"] == 2.0
    assert s["request_throughput"] == pytest.approx(101 / 2)
    assert s["output_token_throughput"] == pytest.approx(101 * 11 / 2)
    assert s["goodput"] == pytest.approx(50 / 2)  # TTFT <= 50 ms of the ok ones
    assert s["goodput_fraction"] == pytest.approx(50 / 102)
    assert s["ttft_p50_ms"] == pytest.approx(percentile([*range(1, 101), 500], 50))
    assert s["ttft_max_ms"] == 500.0
    assert s["tpot_p99_ms"] == 5.0
    assert s["queue_p50_ms"] == 1.0 and s["schedule_lag_p50_ms"] is None
    assert s["prompt_tokens_error_mean"] == 2 and s["prompt_tokens_error_max_abs"] == 2


def test_slo_rules() -> None:
    assert meets_slo(rec(10, None), {"tpot_ms": 1})  # one output token: no TPOT to miss
    assert not meets_slo(rec(10, 5), {"tpot_ms": 1})
    assert not meets_slo(rec(10, 5, e2e_ms=None), {"e2e_ms": 1000})
    assert not meets_slo(rec(10, 5, ok=False), {})
    assert meets_slo(rec(10, 5), {})


def test_empty_phase() -> None:
    s = summarize([], phase="load")
    assert s["requests"] == 0 and s["request_throughput"] is None and s["ttft_p50_ms"] is None
