"""Mooncake-format trace replay.

A trace is JSON lines ``{"timestamp": ms, "input_length": n, "output_length": m,
"hash_ids": [...]}``: one hash id per 512-token block, equal ids meaning equal blocks, so
requests whose ``hash_ids`` start alike share a prefix. Each block's text is the seeded
word stream of its id, so the planted sharing is exactly the trace's; a prompt is its
blocks' words (the last block cut short) fitted to ``input_length`` tokens.

With ``load.kind: trace`` requests are sent at ``(timestamp - first timestamp) x
time_scale`` after the start (``time_scale`` 0.5 replays twice as fast); under a closed
loop the timestamps are ignored and users take lines in order. The replay ends when the
trace does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

from spark_harness.workloads.base import Job, Prompts, Request, Workload, WorkloadError
from spark_harness.workloads.corpus import InputError, resolve_input

#: Tokens per hash id in the Mooncake format.
BLOCK_TOKENS = 512


@dataclass(frozen=True, slots=True)
class TraceEntry:
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...]


def _int_field(obj: dict, key: str, where: str, minimum: int) -> int:
    v = obj.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise InputError(f"{where}: `{key}` must be an integer >= {minimum}, got {v!r}")
    return v


def read_trace(path: str) -> list[TraceEntry]:
    """Parse a Mooncake trace, sorted by timestamp; raise InputError naming the bad line."""
    out: list[TraceEntry] = []
    with resolve_input(path).open() as fh:
        for no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: not JSON: {e}") from None
            if not isinstance(obj, dict):
                raise InputError(f"{where}: expected an object")
            ts = obj.get("timestamp")
            if isinstance(ts, bool) or not isinstance(ts, int | float) or ts < 0:
                raise InputError(f"{where}: `timestamp` must be a number >= 0 (ms), got {ts!r}")
            ids = obj.get("hash_ids", [])
            if not isinstance(ids, list) or not all(
                isinstance(h, int) and not isinstance(h, bool) for h in ids
            ):
                raise InputError(f"{where}: `hash_ids` must be a list of integers")
            out.append(
                TraceEntry(
                    float(ts),
                    _int_field(obj, "input_length", where, 1),
                    _int_field(obj, "output_length", where, 1),
                    tuple(ids),
                )
            )
    if not out:
        raise InputError(f"{path}: the trace has no requests")
    out.sort(key=lambda e: e.timestamp_ms)
    return out


def trace_offsets_ns(entries: list[TraceEntry], time_scale: float) -> list[int]:
    """Send offsets from the replay start: scaled distance from the first timestamp."""
    t0 = entries[0].timestamp_ms
    return [round((e.timestamp_ms - t0) * time_scale * 1e6) for e in entries]


class TraceReplay(Workload):
    """Replays a trace's requests in order; see the module docstring."""

    def __init__(self, prompts: Prompts, entries: list[TraceEntry], time_scale: float = 1.0):
        if not time_scale > 0:
            raise WorkloadError(f"workload.time_scale must be > 0, got {time_scale}")
        self.prompts = prompts
        self.entries = entries
        self.time_scale = time_scale
        self._next = 0

    def arrivals_ns(self) -> list[int]:
        return trace_offsets_ns(self.entries, self.time_scale)

    def words(self, index: int) -> Iterator[str]:
        """The words of entry ``index``: its blocks in order, then unique filler (for a
        line whose ``hash_ids`` cover less than its ``input_length``)."""
        e = self.entries[index]
        n_blocks = math.ceil(e.input_length / BLOCK_TOKENS)
        blocks = (self.prompts.head(f"block:{h}", BLOCK_TOKENS) for h in e.hash_ids[:n_blocks])
        return chain(chain.from_iterable(blocks), self.prompts.stream(f"trace-tail:{index}"))

    def next(self, phase: str, user: int | None) -> Job | None:
        i = self._next
        if i >= len(self.entries):
            return None
        self._next += 1
        e = self.entries[i]
        prompt, n = self.prompts.single(self.words(i), e.input_length)
        return Job(Request(prompt, e.output_length, n))
