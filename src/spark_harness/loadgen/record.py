"""From what the client observed for one request to its ``requests.jsonl`` record.

The client keeps raw observations only (monotonic stamps, status, stamped chunks, the
transport error); every metric is derived here, after the stream has closed, so the
receive path does no work between a byte's arrival and its stamp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spark_harness.clock import Clock
from spark_harness.contract import REQUEST_FIELDS
from spark_harness.loadgen import kstamp
from spark_harness.loadgen.sse import Event, split_events
from spark_harness.loadgen.stream import interpret, usage_fields


@dataclass(slots=True)
class Attempt:
    """One request's identity and the client's raw observations of it."""

    request_id: str
    phase: str
    ready_ns: int  # monotonic: due and waiting for a slot
    prompt_tokens_client: int | None = None
    user_id: int | None = None
    session_id: str | None = None
    turn: int | None = None
    adapter: str | None = None
    scheduled_ns: int | None = None  # monotonic: when the schedule said to send
    sent_ns: int | None = None  # monotonic: just before the request goes to the socket
    sent_done_ns: int | None = None  # monotonic: the client's write of the request returned
    end_ns: int | None = None  # monotonic: stream closed or failure observed
    status: int | None = None
    chunks: list[tuple[int, bytes]] = field(default_factory=list)  # (arrival, bytes) per read
    lower_ns: list[int] = field(default_factory=list)  # per chunk: it arrived after this
    kernel: list[bool] = field(default_factory=list)  # per chunk: a kernel receive stamp
    captured: list[kstamp.Read] | None = None  # the socket's raw reads
    socket_sent_ns: int | None = None  # the socket's first send of the request
    #: the body was not read event by event: the socket's reads alone carry its stamps,
    #: and the client's count of its bytes checks them
    whole_body: bool = False
    body_bytes: int | None = None
    error_kind: str | None = None  # transport/HTTP failure seen by the client
    error: str | None = None
    retry_after_s: float | None = None  # a rejection's Retry-After: the wait it asked for


def _ms(a: int | None, b: int | None) -> float | None:
    return None if a is None or b is None else (b - a) / 1e6


def first_token_bound_ms(att: Attempt, first: Event) -> float | None:
    """How much later than the first token's arrival its stamp may be: 0 for a kernel
    stamp of a read in which no other event follows it (the stamp is the arrival of the
    read's last segment: its own), else the width of the read's arrival interval
    ``[lower bound, stamp]`` (:mod:`.kstamp`)."""
    if first.last and first.read < len(att.kernel) and att.kernel[first.read]:
        return 0.0
    if first.read >= len(att.lower_ns):
        return None
    return (first.t_ns - att.lower_ns[first.read]) / 1e6


def use_kernel_stamps(att: Attempt) -> None:
    """Give a body read whole (``whole_body``: plain HTTP, :mod:`.http1`) its events'
    stamps from the socket's reads (:mod:`.kstamp`), and ``sent_ns`` the socket's own
    send stamp where that is later. It has no stamps of its own: its reads must hold as
    many payload bytes as the client's parser counted, or the record is an error, never
    one with every event stamped at the end; a transfer that failed keeps what its reads
    hold. A body read piece by piece (TLS) keeps the stamps the loop gave its pieces."""
    captured, att.captured = att.captured, None
    if not att.whole_body:
        return
    pieces = kstamp.body_reads(captured) if captured else None
    got = None if pieces is None else sum(len(p[2]) for p in pieces)
    if pieces is None or (att.error_kind is None and got != att.body_bytes):
        if att.error_kind is None:
            att.error_kind = "other"
            att.error = (
                f"the socket's reads hold {got} of the body's {att.body_bytes} bytes: "
                "no per-event stamps"
            )
        return
    att.chunks = [(t, p) for t, _, p, _ in pieces]
    att.lower_ns = [lo for _, lo, _, _ in pieces]
    att.kernel = [k for *_, k in pieces]
    if att.socket_sent_ns is not None and att.sent_ns is not None:
        att.sent_ns = max(att.sent_ns, att.socket_sent_ns)


def make_record(
    att: Attempt, clock: Clock, count_piece: Callable[[str], int]
) -> tuple[dict[str, Any], str | None]:
    """The contract record of an attempt, and the reply text if it succeeded."""
    rec: dict[str, Any] = dict.fromkeys(REQUEST_FIELDS)
    rec.update(
        request_id=att.request_id,
        user_id=att.user_id,
        session_id=att.session_id,
        turn=att.turn,
        adapter=att.adapter,
        phase=att.phase,
        status=att.status,
        prompt_tokens_client=att.prompt_tokens_client,
    )
    use_kernel_stamps(att)
    error_kind, error = att.error_kind, att.error
    t_ns: list[int] = []
    reply: str | None = None
    res_first: Event | None = None
    if att.chunks:
        events, partial = split_events(att.chunks)
        res = interpret(events, count_piece)
        t_ns, res_first = res.t_ns, res.first
        rec.update(usage_fields(res.usage))
        rec["event_tokens"] = res.tokens
        rec["completion_tokens_client"] = sum(res.tokens)
        if error_kind is None and partial.strip():
            error_kind, error = "bad_sse", "stream ended inside an event"
        if error_kind is None and res.error_kind is not None:
            error_kind, error = res.error_kind, res.error
        if error_kind is None and not t_ns:
            error_kind, error = "bad_sse", "no content event in the stream"
        if error_kind is None:
            reply = "".join(res.text)
    elif error_kind is None:
        error_kind, error = "bad_sse", "empty response body"

    sent = att.sent_ns
    first = t_ns[0] if t_ns else None
    done = t_ns[-1] if t_ns and error_kind is None else att.end_ns
    rec["ok"] = error_kind is None
    rec["error_kind"], rec["error"] = error_kind, error
    for key, mono in (
        ("scheduled_ns", att.scheduled_ns),
        ("ready_ns", att.ready_ns),
        ("sent_ns", sent),
        ("first_token_ns", first),
        ("done_ns", done),
    ):
        rec[key] = None if mono is None else clock.to_epoch_ns(mono)
    rec["ttft_ms"] = _ms(sent, first)
    rec["e2e_ms"] = _ms(sent, done)
    rec["queue_ms"] = _ms(att.ready_ns, sent)
    rec["e2e_incl_queue_ms"] = _ms(att.ready_ns, done)
    rec["schedule_lag_ms"] = _ms(att.scheduled_ns, sent)
    if res_first is not None:
        rec["first_token_bound_ms"] = first_token_bound_ms(att, res_first)
    if sent is not None and att.sent_done_ns is not None:
        # the request reached the kernel somewhere in [sent, its write's return]: a
        # client descheduled just before or inside the system call is that much early
        rec["sent_bound_ms"] = max(0.0, (att.sent_done_ns - sent) / 1e6)
    if sent is not None and t_ns:
        rec["event_offsets_ms"] = [(t - sent) / 1e6 for t in t_ns]
    out_tokens = rec["completion_tokens"] or rec["completion_tokens_client"]
    if rec["ok"] and out_tokens and out_tokens > 1:
        rec["tpot_ms"] = (rec["e2e_ms"] - rec["ttft_ms"]) / (out_tokens - 1)
    return rec, reply
