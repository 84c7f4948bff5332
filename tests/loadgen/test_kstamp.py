"""Kernel receive stamps: the socket capture and the decoding of captured responses."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from spark_harness.loadgen import kstamp
from spark_harness.loadgen.kstamp import StampedSocket, body_reads

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_body_reads_give_each_reads_payload_its_stamp_and_lower_bound() -> None:
    capture = [
        (2, 1, HEAD + b"5\r\nhel", True),
        (12, 10, b"lo\r\n3\r\nabc\r\n", False),
        (22, 20, b"0\r\n\r\n", True),
    ]
    assert body_reads(capture) == [(2, 1, b"hel", True), (12, 10, b"loabc", False)]


def test_a_pieces_kernel_stamp_is_its_own_only_if_nothing_later_follows_it_in_the_read() -> None:
    """The stamp is the read's last segment's arrival: the next chunk's size line, written
    apart from its payload and read with this one, may have come later."""
    capture = [
        (2, 1, HEAD + b"3\r\nabc\r\n", True),  # the chunk's line end: written with it
        (12, 10, b"3\r\ndef\r\n3\r\n", True),  # the next chunk's size line follows
        (22, 20, b"ghi\r\n", True),
        (32, 30, b"3\r\njkl\r\n0\r\n\r\n", True),  # the stream's last chunk with it
    ]
    assert body_reads(capture) == [
        (2, 1, b"abc", True),
        (12, 10, b"def", False),
        (22, 20, b"ghi", True),
        (32, 30, b"jkl", True),
    ]


def test_body_reads_map_sized_and_connection_delimited_bodies() -> None:
    sized = [(1, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", True), (3, 1, b"cde", True)]
    assert body_reads(sized) == [(1, 0, b"ab", True), (3, 1, b"cde", True)]
    to_eof = [(1, 0, b"HTTP/1.1 200 OK\r\n\r\nab", True), (3, 1, b"cde", False)]
    assert body_reads(to_eof) == [(1, 0, b"ab", True), (3, 1, b"cde", False)]


def test_body_reads_refuse_what_is_not_a_response() -> None:
    assert body_reads([(1, 1, b"HTTP/1.1 200 OK\r\nTransfer-Enc", True)]) is None
    assert body_reads([(1, 1, HEAD + b"zz\r\nabc\r\n", True)]) is None
    assert body_reads([(1, 1, b"not http at all\r\n\r\n", True)]) is None


def test_body_reads_keep_the_arrived_part_of_a_cut_response() -> None:
    assert body_reads([(2, 1, HEAD + b"3\r\nabc\r\n4\r\nde", True)]) == [(2, 1, b"abcde", True)]


@pytest.mark.skipif(sys.platform != "linux", reason="SO_TIMESTAMPNS is Linux's")
def test_stamped_socket_reads_kernel_arrival_times() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = StampedSocket(socket.AF_INET, socket.SOCK_STREAM)
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    try:
        assert client.kernel
        client.send(b"request")
        server.recv(100)

        def exchange(late_s: float, writes: int = 1) -> tuple[int, int, int, int, int]:
            """The server sends ``writes`` times 5 ms apart; the client reads late_s after
            the last. (first sent from, last sent by, stamp, lower bound, read's time)."""
            before = after = time.monotonic_ns()
            for i in range(writes):
                if i:
                    time.sleep(0.005)
                server.send(b"one")
                after = time.monotonic_ns()
            time.sleep(late_s)
            assert client.recv(100) == b"one" * writes
            own = time.monotonic_ns()
            ((stamp, lower, data, _),) = client.take()
            assert data == b"one" * writes and lower <= stamp <= own
            return before, after, stamp, lower, own

        # the kernel turns receive stamping on a moment after the first socket asks
        # (deferred work): until then a read carries its own stamp (late, never early)
        for _ in range(200):
            _, _, stamp, _, own = exchange(0.005)
            if own - stamp >= 4_000_000:
                break
        before, after, stamp, _, own = exchange(0.02)  # the client is late to read
        assert client.capture == [] and stamp < own
        assert before - 1_000_000 <= stamp <= after + 1_000_000  # the kernel is not
        assert own - stamp >= 15_000_000
        # a late read of two writes: the stamp is the last one's arrival, and the lower
        # bound (the previous read's start) is before the first
        before, after, stamp, lower, _ = exchange(0.02, writes=2)
        assert after - 1_000_000 <= stamp <= after + 1_000_000
        assert stamp - before >= 4_000_000
        assert lower <= before
        client.capture.append((0, 0, b"stale", False))
        client.send(b"next request")  # a new request starts a new capture
        assert client.take() == []
    finally:
        for s in (client, server, listener):
            s.close()


def test_wall_offset_is_measured_between_two_close_monotonic_reads(monkeypatch) -> None:
    # the first reading is interrupted (the monotonic reads 5 ms apart), the second not
    mono = iter([0, 5_000_000, 10_000_000, 10_001_000])
    wall = iter([1_000_007_000_000, 1_000_010_000_000])
    monkeypatch.setattr(kstamp, "_offset", [0, -kstamp.OFFSET_REUSE_NS])
    monkeypatch.setattr(kstamp.time, "monotonic_ns", lambda: next(mono))
    monkeypatch.setattr(kstamp.time, "time_ns", lambda: next(wall))
    assert kstamp.wall_offset_ns(10_001_000) == 1_000_010_000_000 - 10_000_500
    # reused within OFFSET_REUSE_NS, without reading the clocks again
    assert kstamp.wall_offset_ns(10_500_000) == 1_000_010_000_000 - 10_000_500


def test_a_read_after_a_full_one_keeps_its_lower_bound(monkeypatch) -> None:
    """A read that filled its buffer may have left bytes that had already arrived: the
    next read's lower bound is not the full read's start but its own lower bound."""
    monkeypatch.setattr(kstamp, "RECV_BYTES", 8)
    a, b = socket.socketpair()
    client = StampedSocket(fileno=a.detach())
    try:
        client.send(b"request")
        sent = client.sent_ns
        b.sendall(b"x" * 20)
        time.sleep(0.01)
        got = [client.recv(100) for _ in range(3)]
        assert [len(g) for g in got] == [8, 8, 4]
        assert [lower for _, lower, _, _ in client.capture] == [sent, sent, sent]
        before = time.monotonic_ns()
        b.sendall(b"y")
        client.recv(100)
        # the short read emptied the queue: the next read is bounded by its start
        assert sent < client.capture[-1][1] < before
    finally:
        client.close()
        b.close()


@pytest.mark.parametrize(
    "marker", [b"data: [DONE]\n", b"data:[DONE]\n", b"data: [DONE]\r\n", b"data: [DONE]\r"]
)
def test_the_done_event_is_seen_with_or_without_the_space_and_with_any_line_end(
    marker: bytes,
) -> None:
    assert kstamp.has_done_event(b"0\r\n" + marker)
    assert not kstamp.has_done_event(b'data: {"text": "data: [DONE]"}\n')


def test_a_read_with_the_done_event_marks_the_stream_ended_and_says_so_once() -> None:
    a, b = socket.socketpair()
    client = StampedSocket(fileno=a.detach())
    calls: list[int] = []
    try:
        client.send(b"request")
        client.on_done = lambda: calls.append(1)
        quoted = b'data: {"choices":[{"text":"data: [DONE]"}]}\n\n'  # a reply quoting it
        b.sendall(b"2f\r\n" + quoted + b"\r\n")
        client.recv(1024)
        assert not client.done_seen and calls == []
        b.sendall(b"e\r\ndata: [DONE]\n\n\r\n")
        client.recv(1024)
        assert client.done_seen and calls == [1]
        b.sendall(b"0\r\n\r\n")
        client.recv(1024)
        assert calls == [1]
        client.send(b"next request")  # a new request: its stream has not ended
        assert not client.done_seen and client.on_done is None
    finally:
        client.close()
        b.close()
