"""From raw observations to the contract record: every metric against known stamps."""

from __future__ import annotations

import json

import pytest

from spark_harness.clock import Clock
from spark_harness.contract import REQUEST_FIELDS
from spark_harness.loadgen.record import Attempt, make_record
from spark_harness.tokens import count_text

CLOCK = Clock(wall_ns=1_000_000_000_000, mono_ns=0)
MS = 1_000_000


def frame(obj: object) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def stream(*events: tuple[int, object]) -> list[tuple[int, bytes]]:
    return [(t, frame(o)) for t, o in events]


def attempt(chunks: list[tuple[int, bytes]], **kw: object) -> Attempt:
    base = dict(
        request_id="r1",
        phase="load",
        ready_ns=5 * MS,
        sent_ns=10 * MS,
        end_ns=200 * MS,
        status=200,
        prompt_tokens_client=12,
        user_id=3,
        chunks=chunks,
    )
    base.update(kw)
    return Attempt(**base)  # type: ignore[arg-type]


USAGE = {
    "choices": [],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 4},
    },
}


def good_stream() -> list[tuple[int, bytes]]:
    return stream(
        (11 * MS, {"choices": [{"delta": {"role": "assistant", "content": ""}}]}),
        (40 * MS, {"choices": [{"delta": {"content": "a b"}}]}),
        (60 * MS, {"choices": [{"delta": {"content": " c"}}]}),
        (90 * MS, {"choices": [{"delta": {"content": " d e"}}]}),
        (91 * MS, USAGE),
        (91 * MS, b"[DONE]"),
    )


def test_metrics_of_a_good_stream() -> None:
    rec, reply = make_record(attempt(good_stream()), CLOCK, count_text)
    assert set(rec) == set(REQUEST_FIELDS)
    assert rec["ok"] is True and rec["error_kind"] is None
    assert rec["ttft_ms"] == 30.0  # role-only chunk at 11 ms does not count
    assert rec["e2e_ms"] == 80.0  # ends at the last content event, not at usage/[DONE]
    assert rec["tpot_ms"] == pytest.approx((80.0 - 30.0) / (5 - 1))
    assert rec["queue_ms"] == 5.0
    assert rec["e2e_incl_queue_ms"] == 85.0
    assert rec["schedule_lag_ms"] is None
    assert rec["event_offsets_ms"] == [30.0, 50.0, 80.0]
    assert rec["event_tokens"] == [2, 1, 2]
    assert rec["completion_tokens"] == rec["completion_tokens_client"] == 5
    assert (rec["prompt_tokens"], rec["prompt_tokens_client"], rec["cached_tokens"]) == (12, 12, 4)
    assert rec["sent_ns"] == CLOCK.wall_ns + 10 * MS
    assert rec["first_token_ns"] == CLOCK.wall_ns + 40 * MS
    assert rec["done_ns"] == CLOCK.wall_ns + 90 * MS
    assert rec["kv_g3_fetch_ms"] is None
    assert reply == "a b c d e"


def test_schedule_lag_and_tpot_from_client_count_without_usage() -> None:
    chunks = [c for c in good_stream() if b"usage" not in c[1]]
    rec, _ = make_record(attempt(chunks, scheduled_ns=8 * MS), CLOCK, count_text)
    assert rec["schedule_lag_ms"] == 2.0
    assert rec["completion_tokens"] is None
    assert rec["tpot_ms"] == pytest.approx(50.0 / 4)


def test_single_token_has_no_tpot() -> None:
    chunks = stream((30 * MS, {"choices": [{"text": "a"}]}), (31 * MS, b"[DONE]"))
    rec, _ = make_record(attempt(chunks), CLOCK, count_text)
    assert rec["ok"] and rec["tpot_ms"] is None and rec["ttft_ms"] == 20.0


def test_transport_failure_keeps_partial_measurements() -> None:
    chunks = good_stream()[:3]
    att = attempt(chunks, error_kind="reset", error="connection lost", end_ns=70 * MS)
    rec, reply = make_record(att, CLOCK, count_text)
    assert (rec["ok"], rec["error_kind"], rec["error"]) == (False, "reset", "connection lost")
    assert rec["ttft_ms"] == 30.0 and rec["event_offsets_ms"] == [30.0, 50.0]
    assert rec["done_ns"] == CLOCK.wall_ns + 70 * MS  # the failure, not the last content
    assert rec["tpot_ms"] is None and reply is None


@pytest.mark.parametrize(
    ("chunks", "error"),
    [
        (stream((20 * MS, USAGE), (21 * MS, b"[DONE]")), "no content event in the stream"),
        (good_stream()[:-1], "stream ended without data: [DONE]"),
        ([*good_stream(), (95 * MS, b"data: {")], "stream ended inside an event"),
        # no event ever ended (it used to stop the recorder, and with it the run)
        ([(20 * MS, b'data: {"choices":[{"text":"a"}]}\n')], "stream ended inside an event"),
        ([(20 * MS, b'data: {"choices":[{"text":"a"}]}\r')], "stream ended inside an event"),
        ([], "empty response body"),
    ],
)
def test_malformed_streams_are_bad_sse(chunks: list, error: str) -> None:
    rec, _ = make_record(attempt(chunks), CLOCK, count_text)
    assert (rec["ok"], rec["error_kind"], rec["error"]) == (False, "bad_sse", error)


def test_failure_before_sending_has_no_latencies() -> None:
    att = attempt([], sent_ns=None, status=None, error_kind="connect", error="refused")
    rec, _ = make_record(att, CLOCK, count_text)
    assert rec["error_kind"] == "connect"
    assert rec["sent_ns"] is None and rec["ttft_ms"] is None and rec["e2e_ms"] is None
    assert rec["queue_ms"] is None
    assert rec["done_ns"] == CLOCK.wall_ns + 200 * MS


def _text(s: str) -> dict[str, object]:
    return {"choices": [{"text": s}]}


@pytest.mark.parametrize(
    ("kernel", "layout", "bound"),
    [
        (True, "apart", 0.0),  # a kernel stamp of a read ending with the first token: exact
        (True, "after-role", 0.0),  # read late together with the role chunk: still its own
        (True, "before-next", 40.0),  # the second token after it: only [lower, stamp]
        (False, "apart", 40.0),  # a loop stamp is only bounded by the previous read
        (None, "apart", 40.0),  # kernel stamps, but not on that read (the read's own time)
    ],
)
def test_first_token_bound(kernel: bool | None, layout: str, bound: float) -> None:
    role, first, second = frame({"choices": []}), frame(_text("a")), frame(_text(" b"))
    tail = frame(USAGE) + frame(b"[DONE]")
    chunks = {
        "apart": [(20 * MS, role), (60 * MS, first), (80 * MS, second + tail)],
        "after-role": [(20 * MS, b""), (60 * MS, role + first), (80 * MS, second + tail)],
        "before-next": [(20 * MS, role), (60 * MS, first + second), (80 * MS, tail)],
    }[layout]
    stamped = [True, False, True] if kernel is None else [kernel] * 3
    att = attempt(chunks, lower_ns=[10 * MS, 20 * MS, 60 * MS], kernel=stamped)
    rec, _ = make_record(att, CLOCK, count_text)
    assert rec["ok"], rec["error"]
    assert rec["first_token_bound_ms"] == pytest.approx(bound)


def test_the_socket_capture_gives_the_stamps_and_the_send_stamp() -> None:
    body = frame(_text("a")) + frame(USAGE) + frame(b"[DONE]")
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = head + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    att = attempt([], whole_body=True, body_bytes=len(body))
    att.captured = [(40 * MS, 12 * MS, raw, True)]  # the kernel's
    att.socket_sent_ns = 12 * MS  # the request reached the socket 2 ms after the client's stamp
    rec, _ = make_record(att, CLOCK, count_text)
    assert rec["ok"], rec["error"]
    assert rec["ttft_ms"] == pytest.approx(28.0)  # 40 - 12
    assert rec["queue_ms"] == pytest.approx(7.0)  # ready 5 -> socket 12: client time
    # usage and [DONE] came in the same read, after the token: the stamp may be theirs
    assert rec["first_token_bound_ms"] == pytest.approx(28.0)


@pytest.mark.parametrize(("socket_sent_ms", "bound"), [(None, 6.0), (12, 4.0), (16, 0.0)])
def test_sent_bound_is_the_write_after_the_send_stamp(
    socket_sent_ms: int | None, bound: float
) -> None:
    """The request reached the kernel between its send stamp (the socket's own where it
    has one) and the return of the client's write (16 ms here): TTFT may be that much
    long."""
    att = attempt(good_stream(), sent_done_ns=16 * MS, lower_ns=[10 * MS] * 6)
    if socket_sent_ms is not None:
        body = frame(_text("a")) + frame(USAGE) + frame(b"[DONE]")
        raw = CHUNKED_HEAD + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
        att = attempt([], whole_body=True, body_bytes=len(body), sent_done_ns=16 * MS)
        att.captured = [(40 * MS, 12 * MS, raw, True)]
        att.socket_sent_ns = socket_sent_ms * MS
    rec, _ = make_record(att, CLOCK, count_text)
    assert rec["ok"], rec["error"]
    assert rec["sent_bound_ms"] == pytest.approx(bound)


def test_no_write_return_no_sent_bound() -> None:
    rec, _ = make_record(attempt(good_stream()), CLOCK, count_text)
    assert rec["sent_bound_ms"] is None


def test_a_body_read_piece_by_piece_keeps_its_own_stamps() -> None:
    """Over TLS the loop stamps each decrypted piece; a capture (ciphertext) is ignored."""
    att = attempt(good_stream(), lower_ns=[10 * MS] * 6, captured=[(1, 0, b"\x16\x03", True)])
    rec, _ = make_record(att, CLOCK, count_text)
    assert rec["ok"] and rec["ttft_ms"] == pytest.approx(30.0)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def socket_reads(chunks: list[tuple[int, bytes]]) -> list[tuple[int, int, bytes, bool]]:
    """The socket's reads of ``chunks`` sent as one HTTP chunk each, one read apiece."""
    reads, lower = [(1 * MS, 0, CHUNKED_HEAD, True)], 10 * MS
    for t, data in chunks:
        reads.append((t, lower, b"%x\r\n%s\r\n" % (len(data), data), True))
        lower = t
    return reads


def test_a_body_read_whole_takes_every_events_stamp_from_the_socket() -> None:
    events = good_stream()
    body = b"".join(c for _, c in events)
    att = attempt([], whole_body=True, body_bytes=len(body), captured=socket_reads(events))
    rec, reply = make_record(att, CLOCK, count_text)
    assert rec["ok"] and reply == "a b c d e"
    assert rec["ttft_ms"] == 30.0 and rec["event_offsets_ms"] == [30.0, 50.0, 80.0]
    assert rec["first_token_bound_ms"] == 0.0  # one event per read, kernel-stamped


def test_a_body_read_whole_whose_socket_reads_fall_short_is_an_error() -> None:
    events = good_stream()
    body = b"".join(c for _, c in events)
    short = socket_reads(events[:-1])
    att = attempt([], whole_body=True, body_bytes=len(body), captured=short)
    rec, reply = make_record(att, CLOCK, count_text)
    assert (rec["ok"], rec["error_kind"]) == (False, "other")
    got = len(body) - len(events[-1][1])
    assert rec["error"] == (
        f"the socket's reads hold {got} of the body's {len(body)} bytes: no per-event stamps"
    )
    assert rec["ttft_ms"] is None and reply is None  # never every event at the body's end


def test_a_failed_body_read_whole_keeps_the_events_its_socket_read() -> None:
    reads = socket_reads(good_stream()[:3])
    att = attempt([], whole_body=True, captured=reads, error_kind="reset", end_ns=70 * MS)
    rec, _ = make_record(att, CLOCK, count_text)
    assert (rec["ok"], rec["error_kind"]) == (False, "reset")
    assert rec["ttft_ms"] == 30.0 and rec["event_offsets_ms"] == [30.0, 50.0]
