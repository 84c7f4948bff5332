"""Kernel receive stamps: the socket capture and the decoding of chunked responses."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from spark_harness.loadgen import kstamp
from spark_harness.loadgen.kstamp import StampedSocket, dechunk

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_dechunk_gives_a_reads_first_byte_its_first_stamp_and_the_rest_the_reads() -> None:
    capture = [
        (1, 2, HEAD + b"5\r\nhel"),
        (10, 12, b"lo\r\n3\r\nabc\r\n"),
        (20, 22, b"0\r\n\r\n"),
    ]
    pieces = dechunk(capture)
    assert pieces == [(1, b"h"), (2, b"el"), (10, b"l"), (12, b"oabc")]
    assert b"".join(p for _, p in pieces) == b"helloabc"


def test_dechunk_refuses_what_it_cannot_map() -> None:
    assert dechunk([(1, 1, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")]) is None
    assert dechunk([(1, 1, b"HTTP/1.1 200 OK\r\nTransfer-Enc")]) is None
    assert dechunk([(1, 1, HEAD + b"zz\r\nabc\r\n")]) is None


def test_dechunk_keeps_the_complete_part_of_a_cut_response() -> None:
    assert dechunk([(1, 2, HEAD + b"3\r\nabc\r\n4\r\nde")]) == [(1, b"a"), (2, b"bcde")]


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
        holder: list[StampedSocket] = []
        token = kstamp.sending.set(holder)
        client.send(b"request")
        kstamp.sending.reset(token)
        assert holder == [client]  # the sending request learns its socket
        server.recv(100)

        def exchange(late_s: float) -> tuple[int, int, int, int]:
            """The server sends; the client reads late_s later. (sent from, sent by,
            first-byte stamp, read stamp)."""
            before = time.monotonic_ns()
            server.send(b"one")
            after = time.monotonic_ns()
            time.sleep(late_s)
            assert client.recv(100) == b"one"
            ((first, own, data),) = client.take()
            assert data == b"one" and first <= own
            return before, after, first, own

        # the kernel turns receive stamping on a moment after the first socket asks
        # (deferred work): until then a read carries its own stamp (late, never early)
        for _ in range(200):
            *_, first, own = exchange(0.005)
            if own - first >= 4_000_000:
                break
        before, after, first, own = exchange(0.02)  # the client is late to read
        assert before - 1_000_000 <= first <= after + 1_000_000  # the kernel is not
        assert own - first >= 15_000_000
        client.capture.append((0, 0, b"stale"))
        client.send(b"next request")  # a new request starts a new capture
        assert client.take() == []
    finally:
        for s in (client, server, listener):
            s.close()
