"""Every server misbehaviour becomes a record with its reason; the run goes on."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import logging
import socket
import sys
import time
from pathlib import Path

import pytest

from spark_harness.clock import Clock
from spark_harness.contract import REQUEST_FIELDS
from spark_harness.loadgen import http1
from spark_harness.loadgen.client import Client, api_url, request_body
from spark_harness.loadgen.record import Attempt, make_record
from spark_harness.tokens import count_text
from spark_harness.workloads import Request
from spark_harness_testkit.groundtruth import LINGER, MISBEHAVIOURS, TruthConfig, serve

from .conftest import endpoint, run_against, spec

EXPECTED = {  # misbehaviour -> (error_kind, words in the reason, status, first token seen)
    "http-500": ("http", "HTTP 500: ", 500, False),
    "http-429": ("rejected", "HTTP 429", 429, False),
    "not-sse": ("bad_sse", "expected text/event-stream, got application/json", 200, False),
    "bad-json": ("bad_sse", "event is not JSON", 200, True),
    "reset": ("reset", "connection lost after", 200, True),
    "stall": ("timeout", "no complete response within 0.4 s", 200, True),
    "no-done": ("bad_sse", "stream ended without data: [DONE]", 200, True),
    "error-event": ("other", "server error in stream: injected stream error", 200, True),
    "no-content": ("bad_sse", "no content event in the stream", 200, False),
}


def test_each_misbehaviour_is_a_recorded_error_and_the_run_goes_on(
    run_in_process, tmp_path: Path
) -> None:
    assert set(EXPECTED) == set(MISBEHAVIOURS)
    adapters = tmp_path / "adapters.txt"
    adapters.write_text("\n".join(["good", *MISBEHAVIOURS]) + "\n")
    point = spec(
        {
            "kind": "lora",
            "adapters": str(adapters),
            "adapter_cache": "warm",
            "context_tokens": 8,
            "output_tokens": 4,
        },
        {"kind": "closed", "users": 4},
        warmup_s=0.0,
        load_s=0.6,
        request_timeout_s=0.4,
    )
    out = run_in_process(point, TruthConfig(ttft_ms=1, itl_ms=1))
    assert all(set(r) == set(REQUEST_FIELDS) for r in out.records)
    by_adapter: dict[str, list[dict]] = {}
    for r in out.records:
        by_adapter.setdefault(r["adapter"], []).append(r)
    # warm-up touched every adapter once, and the run went on after every failure
    assert set(by_adapter) == {"good", *MISBEHAVIOURS}
    assert len(out.phase("load")) > 0
    assert all(r["ok"] for r in by_adapter["good"])
    for name, (kind, reason, status, first) in EXPECTED.items():
        for r in by_adapter[name]:
            assert (r["ok"], r["error_kind"], r["status"]) == (False, kind, status), (name, r)
            assert reason in r["error"], (name, r["error"])
            assert (r["ttft_ms"] is not None) == first, name
            assert r["done_ns"] is not None and r["sent_ns"] is not None


def test_a_response_left_open_after_done_is_complete(run_in_process) -> None:
    point = spec(
        {"kind": "fixed_context", "context_tokens": 4, "output_tokens": 3},
        {"kind": "closed", "users": 1},
        load_s=0.05,
        request_timeout_s=5.0,
    )
    out = run_in_process(point, TruthConfig(ttft_ms=1, itl_ms=1, stall_s=3.0), model=LINGER)
    r = out.records[0]
    assert r["ok"] and r["e2e_ms"] < 100  # ends at the last token, not at the close
    assert len(out.records) == 1
    # the client waited DONE_GRACE_S (1 s) for the close, not the server's 3 s
    assert (out.windows["cooldown"][1] - out.windows["load"][0]) / 1e9 < 2.5


@pytest.mark.skipif(sys.platform != "linux", reason="kernel receive stamps are Linux's")
def test_streams_carry_kernel_receive_stamps(run_in_process, caplog) -> None:
    caplog.set_level(logging.INFO, logger="spark_harness.loadgen")
    point = spec(
        {"kind": "fixed_context", "context_tokens": 4, "output_tokens": 3},
        {"kind": "closed", "users": 2},
        load_s=0.2,
    )
    out = run_in_process(point)
    n = len(out.records)
    assert f"event stamps: kernel receive time for {n} of {n} streams" in caplog.text
    assert all(r["sent_ns"] < r["first_token_ns"] for r in out.records)


def test_a_chunked_stream_is_read_whole_and_stamped_per_event_by_its_socket() -> None:
    """The client does not wake per event; the socket's reads still time each one."""

    async def main() -> Attempt:
        truth = serve(TruthConfig(ttft_ms=30, itl_ms=20))
        async with truth as url, Client(endpoint(url), connections=1, timeout_s=5.0) as client:
            att = Attempt(request_id="r1", phase="load", ready_ns=time.monotonic_ns())
            await client.send(Request("a b c d", 4, 4), att)
            return att

    att = asyncio.run(main())
    assert att.whole_body and att.error_kind is None and att.captured
    assert not att.chunks and att.body_bytes  # the loop did not read it, aiohttp counted it
    rec, _ = make_record(att, Clock.start(), count_text)
    offsets = rec["event_offsets_ms"]
    assert rec["ok"] and 30 <= rec["ttft_ms"] < 60 and len(offsets) == 4
    assert all(15 < b - a < 40 for a, b in itertools.pairwise(offsets))


def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point = spec(
        {"kind": "fixed_context", "context_tokens": 4, "output_tokens": 2},
        {"kind": "closed", "users": 1},
        load_s=0.1,
    )
    out = asyncio.run(run_against(endpoint(f"http://127.0.0.1:{port}"), point))
    assert out.records and all(r["error_kind"] == "connect" for r in out.records)
    assert all(r["status"] is None and r["sent_ns"] is None for r in out.records)


def test_prompts_over_the_engine_limit_are_rejected_before_sending(run_in_process) -> None:
    point = spec(
        {"kind": "fixed_context", "context_tokens": 64, "output_tokens": 2},
        {"kind": "closed", "users": 1},
        load_s=0.05,
    )
    out = run_in_process(point, max_num_tokens=32)
    r = out.records[0]
    assert (r["error_kind"], r["sent_ns"], r["status"]) == ("rejected", None, None)
    assert "exceeds the engine's max_num_tokens 32" in r["error"]


@pytest.mark.parametrize(("model", "kind"), [("http-429", "rejected"), ("http-500", "http")])
def test_a_user_not_served_waits_longer_each_time_before_trying_again(
    run_in_process, model: str, kind: str
) -> None:
    """A closed-loop user whose request failed at once pauses 10, 20, 40 ms... before
    the next (a retry storm would be a request per round trip)."""
    point = spec(
        {"kind": "fixed_context", "context_tokens": 4, "output_tokens": 2},
        {"kind": "closed", "users": 4},
        load_s=0.5,
    )
    out = run_in_process(point, model=model)
    recs = out.phase("load")
    assert recs and all(r["error_kind"] == kind for r in recs)
    by_user: dict[int, list[int]] = {}
    for r in recs:
        by_user.setdefault(r["user_id"], []).append(r["sent_ns"])
    assert len(by_user) == 4
    for sent in by_user.values():
        assert 3 <= len(sent) <= 6  # 10 + 20 + ... + 320 ms > 0.5 s
        gaps_ms = [(b - a) / 1e6 for a, b in itertools.pairwise(sorted(sent))]
        assert all(g >= 10 * 2**i for i, g in enumerate(gaps_ms)), gaps_ms


def test_a_user_whose_stream_broke_goes_on_at_once(run_in_process) -> None:
    """A served stream that ended wrong (no [DONE]) is followed at once, as a success
    is: the planned load stays the load."""
    point = spec(
        {"kind": "fixed_context", "context_tokens": 4, "output_tokens": 2},
        {"kind": "closed", "users": 2},
        load_s=0.5,
    )
    out = run_in_process(point, model="no-done")
    recs = out.phase("load")
    assert all(r["error_kind"] == "bad_sse" for r in recs)
    assert len(recs) > 40  # ~5 ms a request (a pause would allow about 12)


def test_a_rejections_retry_after_is_honoured(run_in_process) -> None:
    point = spec(
        {"kind": "fixed_context", "context_tokens": 4, "output_tokens": 2},
        {"kind": "closed", "users": 3},
        load_s=0.5,
    )
    cfg = TruthConfig(ttft_ms=2, itl_ms=1, retry_after="1")
    t0 = time.monotonic()
    out = run_in_process(point, cfg, model="http-429")
    assert len(out.phase("load")) == 3  # one each, then a wait past the window
    assert time.monotonic() - t0 < 1.0  # the window's end ends the wait


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"3", 3.0),
        (b" 0 ", 0.0),
        (None, None),
        (b"", None),
        (b"soon", None),
        (b"-1", None),
        ("\u00b2".encode("latin-1"), None),  # a superscript two: a digit only to Python
        (b"\xff\xfe", None),
        (b"Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: at once
    ],
)
def test_retry_after_values(value: bytes | None, seconds: float | None) -> None:
    assert http1.retry_after_s(value) == seconds


def test_retry_after_as_a_date_to_come() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True).encode()
    wait = http1.retry_after_s(when)
    assert wait is not None and 28 <= wait <= 30


def test_request_body_and_url() -> None:
    chat = Request([{"role": "user", "content": "hi"}], 8, 2, adapter="a1")
    body = request_body(chat, "base")
    assert body["model"] == "a1" and body["messages"] == chat.prompt
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["ignore_eos"] is True and body["max_tokens"] == 8
    assert request_body(Request("hi", 8, 1), "base")["model"] == "base"
    assert api_url("http://h:1", chat=True) == "http://h:1/v1/chat/completions"
    assert api_url("http://h:1/v1/", chat=False) == "http://h:1/v1/completions"
