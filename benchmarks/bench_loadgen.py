"""The load generator against ground truth, at the loads users run: one command, three tables.

    .venv/bin/python benchmarks/bench_loadgen.py [--load-s 10] [--only accuracy]
        [--streams 16,64,256] [--prompts 512,4096] [--ttft-ms 100] [--itl-ms 20]
        [--events-per-write 1] [--poll-gaps-us 0,250]

The ground-truth server (``spark_harness_testkit.groundtruth``) runs in its own process on
one CPU, the client (``run_standalone``: the load generator as a point runs it) on
another. Truth per request is what the server did, on the host's shared monotonic clock:
TTFT = first content write - kernel arrival of the request, TPOT from the content
writes. Tables:

- accuracy: closed loop at 16, 64, 256 streams x 512- and 4,096-token prompts, 128
  output tokens 20 ms apart after a 100 ms TTFT; the client's p50/p99 minus the truth's,
  TPOT p50 error, the share of first tokens whose stamp carries a bound (a late read
  held more than one event), the largest error the stamps' bounds (the first token's
  read, the request's write) and the server's own write time do not explain, and the
  server's own lateness (p99 of first-token write - due: it was not the limit while
  this is small);
- capacity: a zero-delay server (128 tokens, 512-token prompts) writing each event on
  its own (64 streams: the client is woken per write, the server is the limit) and
  each whole reply at once (64 and 256 streams: the client reads replies, not events):
  the client's CPU-ms per 1,000 streamed tokens (its event loop's process, and with the
  recorder process that builds the records) and the requests/s it sustained (loop +
  recorder CPU below 100 %, the server's near it: the server was the limit); then the
  same servers read by a bare asyncio client (reads into a reused buffer, no stamps, no
  records): the floor any Python client pays to be woken and read, beside which the
  load generator's figures are ratios;
- open loop: constant schedules at 50 and 500 req/s (512-token prompts, 16 tokens 20 ms
  apart after 100 ms): achieved rate against the schedule's own arrivals in the window
  and the schedule lag (sent - due) p99.

Every row runs once per poll gap (``--poll-gaps-us``: the event loop's, 0 for asyncio's
own; :mod:`spark_harness.loadgen.eventloop`), one after the other, so a change of the
gap is read against its baseline of the same session.

The accuracy table's shapes are options, so a workload the table does not run (a
faster decode, more streams, longer prompts) is measured the same way.

Targets (issue 15): TTFT p50 within 0.5 ms and p99 within 2 ms at 64 and 256 streams;
TPOT within 0.5 ms; <= 5 CPU-ms per 1,000 tokens; rate within 1 %, lag p99 <= 2 ms. The
load average is printed before and after: figures mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from spark_harness.loadgen import eventloop, run_standalone
from spark_harness.loadgen.schedule import schedule
from spark_harness_testkit.groundtruth import TruthConfig, TruthServer, compare, pin_apart

STREAMS = (16, 64, 256)
PROMPTS = (512, 4096)
OUTPUT_TOKENS = 128
RATES = (50, 500)
TABLES = ("accuracy", "capacity", "openloop")
#: capacity rows: (the server's content events per write, streams). One event per write
#: wakes the client per event while the server (one Python process) is the limit; a
#: whole reply per write (a zero-delay server has every token at once) leaves the
#: client as the limit, which is its capacity
CAPACITY_ROWS = ((1, 64), (OUTPUT_TOKENS, 64), (OUTPUT_TOKENS, 256))
#: the same servers read by a bare asyncio client (:func:`bare_client`)
BARE_ROWS = ((1, 64), (OUTPUT_TOKENS, 64))


def point(users: int | None, prompt: int, tokens: int, phases: dict[str, float], **load: Any):
    """A point spec: closed loop of ``users``, or the open ``load`` given."""
    return {
        "workload": {
            "kind": "fixed_context",
            "context_tokens": prompt,
            "output_tokens": tokens,
            "nonce": True,
        },
        "load": {"kind": "closed", "users": users} if users else load,
        "phases": phases,
        "seed": 1,
    }


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """``fn()``, its wall seconds, this process's CPU seconds (the event loop and its
    threads) and its finished children's (the recorder process; the truth server still
    runs, so it is not among them)."""
    c0, k0, t0 = time.process_time(), _children_cpu_s(), time.monotonic()
    out = fn()
    return out, time.monotonic() - t0, time.process_time() - c0, _children_cpu_s() - k0


def table(title: str, columns: Sequence[str]) -> None:
    print(f"\n**{title}**\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))


def row(*cells: Any) -> None:
    print("| " + " | ".join(f"{c:.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")


def pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(xs, q))


def accuracy(
    cpu: int | None,
    load_s: float,
    streams: Sequence[int] = STREAMS,
    prompts: Sequence[int] = PROMPTS,
    ttft_ms: float = 100.0,
    itl_ms: float = 20.0,
    events_per_write: int = 1,
    gaps_us: Sequence[int] = (eventloop.POLL_GAP_NS // 1000,),
) -> None:
    per_write = f", {events_per_write} events per write" if events_per_write > 1 else ""
    table(
        f"Accuracy against truth (ms; closed loop, TTFT {ttft_ms:g} ms, "
        f"{OUTPUT_TOKENS} tokens at {itl_ms:g} ms{per_write})",
        [
            "streams",
            "prompt tokens",
            "poll gap µs",
            "requests",
            "true TTFT p50",
            "error p50",
            "true TTFT p99",
            "error p99",
            "error max",
            "TPOT error p50",
            "bounded first tokens",
            "bound p99",
            "error beyond bound max",
            "server late p99",
            "loop / recorder CPU",
        ],
    )
    cfg = TruthConfig(ttft_ms=ttft_ms, itl_ms=itl_ms, events_per_write=events_per_write)
    with TruthServer(cfg, cpu=cpu) as srv:
        for users, prompt, gap_us in itertools.product(streams, prompts, gaps_us):
            srv.truth(clear=True)
            phases = {"warmup_s": 3.0, "load_s": load_s, "cooldown_s": 0.0}
            spec = point(users, prompt, OUTPUT_TOKENS, phases)
            (records, _), wall, busy, rec_busy = timed(
                lambda s=spec, g=gap_us: run_standalone(
                    srv.base_url, s, model="truth", kind="sim", poll_gap_ns=g * 1000
                )
            )
            pairs = compare([r for r in records if r["phase"] == "load"], srv.truth())
            if not pairs:
                row(users, prompt, gap_us, 0, *["-"] * 11)
                continue
            col = {k: [p[k] for p in pairs] for k in pairs[0]}
            err = [a - b for a, b in zip(col["ttft_ms"], col["true_ttft_ms"], strict=True)]
            bounds = [b or 0.0 for b in col["first_token_bound_ms"]]
            # what the stamps' bounds (the first token's read, the request's write:
            # a client descheduled between stamping and sending) and the server's own
            # write time do not explain
            sends = [s or 0.0 for s in col["sent_bound_ms"]]
            beyond = [
                e - b - s - w
                for e, b, s, w in zip(err, bounds, sends, col["server_write_ms"], strict=True)
            ]
            row(
                users,
                prompt,
                gap_us,
                len(pairs),
                pct(col["true_ttft_ms"], 50),
                pct(col["ttft_ms"], 50) - pct(col["true_ttft_ms"], 50),
                pct(col["true_ttft_ms"], 99),
                pct(col["ttft_ms"], 99) - pct(col["true_ttft_ms"], 99),
                max(err),
                pct(col["tpot_ms"], 50) - pct(col["true_tpot_ms"], 50),
                f"{sum(b > 0 for b in bounds) / len(bounds):.1%}",
                pct(bounds, 99),
                max(beyond),
                pct(col["server_late_ms"], 99),
                f"{busy / wall:.0%} / {rec_busy / wall:.0%}",
            )


def capacity(cpu: int | None, load_s: float, gaps_us: Sequence[int]) -> None:
    table(
        "Capacity on one core (zero-delay server, 128 tokens, 512-token prompts)",
        [
            "server's events per write",
            "streams",
            "poll gap µs",
            "requests/s",
            "tokens/s",
            "loop / recorder CPU",
            "server CPU",
            "CPU-ms per 1,000 tokens: loop",
            "loop + recorder",
            "CPU-ms per request: loop",
            "loop + recorder",
            "bounded first tokens",
        ],
    )
    phases = {"warmup_s": 1.0, "load_s": load_s, "cooldown_s": 0.0}
    for per_write, streams in CAPACITY_ROWS:
        for gap_us in gaps_us:
            cfg = TruthConfig(ttft_ms=0, itl_ms=0, events_per_write=per_write)
            with TruthServer(cfg, cpu=cpu) as srv:
                spec = point(streams, 512, OUTPUT_TOKENS, phases)
                served, t0 = srv.cpu_s(), time.monotonic()
                (records, windows), wall, busy, rec_busy = timed(
                    lambda s=spec, g=gap_us: run_standalone(
                        srv.base_url, s, model="truth", kind="sim", poll_gap_ns=g * 1000
                    )
                )
                served = (srv.cpu_s() - served) / (time.monotonic() - t0)
            load = [r for r in records if r["phase"] == "load" and r["ok"]]
            lo, hi = windows["load"]
            tokens = sum(r["completion_tokens_client"] for r in records if r["ok"])
            done = sum(r["ok"] for r in records)
            bounded = sum((r["first_token_bound_ms"] or 0) > 0 for r in load)
            row(
                per_write,
                streams,
                gap_us,
                f"{len(load) / ((hi - lo) / 1e9):.0f}",
                f"{len(load) * OUTPUT_TOKENS / ((hi - lo) / 1e9):.0f}",
                f"{busy / wall:.0%} / {rec_busy / wall:.0%}",
                f"{served:.0%}",
                1e6 * busy / tokens,
                1e6 * (busy + rec_busy) / tokens,
                1e3 * busy / done,
                1e3 * (busy + rec_busy) / done,
                f"{bounded / max(1, len(load)):.0%}",
            )
    # the same servers read by the bare client: what any asyncio client pays to be woken
    # and read, the floor under the load generator's figures
    for per_write, streams in BARE_ROWS:
        for gap_us in gaps_us:
            cfg = TruthConfig(ttft_ms=0, itl_ms=0, events_per_write=per_write)
            with TruthServer(cfg, cpu=cpu) as srv:
                served = srv.cpu_s()
                t0 = time.monotonic()
                done, busy, window = bare_client(
                    srv.base_url, streams, 512, 1.0, load_s, gap_us * 1000
                )
                served = (srv.cpu_s() - served) / (time.monotonic() - t0)
            tokens = done * OUTPUT_TOKENS
            row(
                f"{per_write} (bare asyncio client)",
                streams,
                gap_us,
                f"{done / window:.0f}",
                f"{tokens / window:.0f}",
                f"{busy / window:.0%} / -",
                f"{served:.0%}",
                1e6 * busy / tokens,
                "-",
                1e3 * busy / done,
                "-",
                "-",
            )


class _BareStream(asyncio.BufferedProtocol):
    """One kept-alive stream of the bare client: the same request again as soon as the
    last reply's ``[DONE]`` arrives; events found, nothing else looked at. Reads go into
    one preallocated 64 KiB buffer (``recv_into``: no allocation per read)."""

    def __init__(self, request: bytes, stop_at: float, replies: list[int]) -> None:
        self.request, self.stop_at, self.replies = request, stop_at, replies
        self.buf = memoryview(bytearray(64 << 10))
        self.pending = b""  # bytes after the last complete event
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        buf = self.pending + bytes(self.buf[:nbytes])
        cut = buf.rfind(b"\n\n")
        self.pending = buf[cut + 2 :] if cut >= 0 else buf
        if b"[DONE]\n\n" in buf:
            self.replies.append(time.monotonic_ns())
            if time.monotonic() < self.stop_at:
                self.transport.write(self.request)  # type: ignore[attr-defined]
            else:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


def bare_client(
    base_url: str, streams: int, prompt: int, warmup_s: float, load_s: float, gap_ns: int
):
    """The floor of an asyncio client on this machine: ``streams`` closed-loop streams on
    kept-alive connections, plain reads into a reused buffer (no receive stamps), no
    parsing, no records, on an event loop with a poll gap of ``gap_ns``. Returns (replies
    finished in the window, its CPU seconds in the window, the window's seconds)."""
    host, port = base_url.split("//")[1].split(":")
    body = json.dumps(
        {"model": "truth", "prompt": " ".join(["word"] * prompt), "stream": True,
         "max_tokens": OUTPUT_TOKENS, "stream_options": {"include_usage": True}}
    ).encode()  # fmt: skip
    request = (
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def run() -> tuple[int, float, float]:
        loop = asyncio.get_running_loop()
        replies: list[int] = []
        stop_at = time.monotonic() + warmup_s + load_s
        made = [
            await loop.create_connection(
                lambda: _BareStream(request, stop_at, replies), host, int(port)
            )
            for _ in range(streams)
        ]
        await asyncio.sleep(warmup_s)
        lo, c0 = time.monotonic_ns(), time.process_time()
        await asyncio.sleep(load_s)
        hi, c1 = time.monotonic_ns(), time.process_time()
        await asyncio.gather(*(p.closed for _, p in made))
        return sum(lo <= t < hi for t in replies), c1 - c0, (hi - lo) / 1e9

    return eventloop.run(run(), gap_ns)


def openloop(cpu: int | None, load_s: float, gaps_us: Sequence[int]) -> None:
    table(
        "Open loop (constant schedule; 16 tokens at 20 ms after 100 ms)",
        [
            "rate",
            "poll gap µs",
            "planned in window",
            "sent in window",
            "achieved / planned",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "errors",
        ],
    )
    with TruthServer(TruthConfig(ttft_ms=100, itl_ms=20), cpu=cpu) as srv:
        for rate, gap_us in itertools.product(RATES, gaps_us):
            phases = {"warmup_s": 1.0, "load_s": load_s, "cooldown_s": 0.0}
            spec = point(None, 512, 16, phases, kind="constant", rate=rate)
            records, windows = run_standalone(
                srv.base_url, spec, model="truth", kind="sim", poll_gap_ns=gap_us * 1000
            )
            load = [r for r in records if r["phase"] == "load"]
            lo, hi = windows["load"]
            start = min(r["scheduled_ns"] for r in records)
            planned = sum(
                1 for o in schedule("constant", rate, 1, (hi - start) / 1e9) if start + o >= lo
            )
            lags = [r["schedule_lag_ms"] for r in load]
            row(
                rate,
                gap_us,
                planned,
                len(load),
                f"{len(load) / planned:.4f}",
                pct(lags, 50),
                pct(lags, 99),
                max(lags),
                sum(not r["ok"] for r in load),
            )


def ints(text: str) -> tuple[int, ...]:
    """``16,64,256`` -> (16, 64, 256)."""
    return tuple(int(x) for x in text.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--load-s", type=float, default=10.0, help="load window of each row")
    ap.add_argument("--only", choices=TABLES, action="append", help="only these tables")
    ap.add_argument("--streams", type=ints, default=STREAMS, help="accuracy: closed-loop streams")
    ap.add_argument("--prompts", type=ints, default=PROMPTS, help="accuracy: prompt tokens")
    ap.add_argument("--ttft-ms", type=float, default=100.0, help="accuracy: the server's TTFT")
    ap.add_argument("--itl-ms", type=float, default=20.0, help="accuracy: between tokens")
    ap.add_argument(
        "--events-per-write",
        type=int,
        default=1,
        help="accuracy: events the server writes together (a server that flushes every N)",
    )
    ap.add_argument(
        "--poll-gaps-us",
        type=ints,
        default=(0, eventloop.POLL_GAP_NS // 1000),
        help="the event loop's poll gaps to run each row with (0: asyncio's own)",
    )
    args = ap.parse_args()
    server_cpu = pin_apart()
    print(
        f"load average at start: {os.getloadavg()[0]:.2f}; client on CPU "
        f"{sorted(os.sched_getaffinity(0))}, server on CPU {server_cpu}"
    )
    runs: dict[str, Callable[[], None]] = {
        "accuracy": lambda: accuracy(
            server_cpu,
            args.load_s,
            args.streams,
            args.prompts,
            args.ttft_ms,
            args.itl_ms,
            args.events_per_write,
            args.poll_gaps_us,
        ),
        "capacity": lambda: capacity(server_cpu, args.load_s, args.poll_gaps_us),
        "openloop": lambda: openloop(server_cpu, args.load_s, args.poll_gaps_us),
    }
    for name in args.only or TABLES:
        runs[name]()
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
