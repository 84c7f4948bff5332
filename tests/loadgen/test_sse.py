"""SSE framing: events, their first-byte stamps, every line-ending style, any chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spark_harness.loadgen.sse import Event, split_events


def test_single_chunk_events_and_partial_tail() -> None:
    events, tail = split_events([(5, b'data: {"a":1}\n\ndata: [DONE]\n\ndata: par')])
    assert events == [Event(5, '{"a":1}'), Event(5, "[DONE]")]
    assert tail == b"data: par"


def test_event_is_stamped_with_the_chunk_holding_its_first_byte() -> None:
    chunks = [(1, b"data: one\n\nda"), (2, b"ta: two\n"), (3, b"\ndata: three\n\n")]
    events, tail = split_events(chunks)
    assert [(e.t_ns, e.data) for e in events] == [(1, "one"), (1, "two"), (3, "three")]
    assert tail == b""


def test_multiline_data_event_field_comments_and_crlf() -> None:
    raw = b": keep-alive\r\n\r\nevent: error\r\ndata: a\r\ndata: b\r\n\r\ndata:no-space\r\r"
    events, _ = split_events([(9, raw)])
    assert events == [Event(9, "a\nb", "error"), Event(9, "no-space")]


def test_comment_only_blocks_are_not_events_and_do_not_move_stamps() -> None:
    events, _ = split_events([(1, b": ping\n\n"), (2, b": ping\ndata: x\n\n")])
    assert events == [Event(2, "x")]


def test_no_chunks() -> None:
    assert split_events([]) == ([], b"")


def test_a_stream_whose_first_event_never_ends_is_all_tail() -> None:
    for eol in (b"\n", b"\r\n", b"\r"):
        raw = b"data: x" + eol + b"data: y"
        assert split_events([(1, raw[:5]), (2, raw[5:])]) == ([], raw)


_payloads = st.lists(st.text(alphabet='abc {}:"', min_size=0, max_size=12), min_size=1, max_size=8)


@given(_payloads, st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_any_chunking_gives_the_same_events(payloads: list[str], eol: bytes, data) -> None:
    stream = b"".join(b"data: " + p.encode() + eol + eol for p in payloads)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(stream) - 1, 1)), max_size=10)))
    pieces, prev = [], 0
    for c in [*cuts, len(stream)]:
        if c > prev:
            pieces.append(stream[prev:c])
            prev = c
    chunks = [(i, p) for i, p in enumerate(pieces)]
    events, tail = split_events(chunks)
    assert [e.data for e in events] == payloads
    assert tail == b""
    # each event's stamp is the chunk where its "data:" began
    starts, pos = [], 0
    for p in payloads:
        starts.append(pos)
        pos += len(b"data: ") + len(p.encode()) + 2 * len(eol)
    bounds, pos = [], 0
    for i, p in chunks:
        bounds.append((pos, pos + len(p), i))
        pos += len(p)
    expected = [next(i for lo, hi, i in bounds if lo <= s < hi) for s in starts]
    assert [e.t_ns for e in events] == expected


def test_events_know_their_read_and_whether_another_follows_them_there() -> None:
    chunks = [(1, b"data: a\n\n"), (2, b"data: b\n\ndata: c\n"), (3, b"\ndata: d\n\ndata: e")]
    events, tail = split_events(chunks)
    assert [(e.data, e.t_ns, e.read, e.last) for e in events] == [
        ("a", 1, 0, True),
        ("b", 2, 1, False),  # c begins after it in read 1
        ("c", 2, 1, True),  # its end came with read 2, and nothing else began in read 1
        ("d", 3, 2, False),  # the start of e follows it in read 2
    ]
    assert tail == b"data: e"
