"""Mooncake traces: parsing, scaled offsets, planted prefix sharing by hash_ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spark_harness import tokens
from spark_harness.workloads import InputError, Prompts, WorkloadError
from spark_harness.workloads.trace import BLOCK_TOKENS, TraceEntry, TraceReplay, read_trace


def write(tmp_path: Path, lines: list) -> str:
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return str(f)


def test_the_shipped_trace_parses_in_time_order() -> None:
    entries = read_trace("inputs/traces/mooncake_small.jsonl")
    assert len(entries) == 120
    assert [e.timestamp_ms for e in entries] == sorted(e.timestamp_ms for e in entries)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{oops", "t.jsonl:2: not JSON"),
        ({"timestamp": -1, "input_length": 1, "output_length": 1}, "`timestamp`"),
        ({"timestamp": 1, "input_length": 0, "output_length": 1}, "`input_length`"),
        ({"timestamp": 1, "input_length": 1, "output_length": True}, "`output_length`"),
        ({"timestamp": 1, "input_length": 1, "output_length": 1, "hash_ids": ["a"]}, "hash_ids"),
        ([1, 2], "expected an object"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, line: object, message: str) -> None:
    good = {"timestamp": 0, "input_length": 1, "output_length": 1}
    with pytest.raises(InputError, match=message):
        read_trace(write(tmp_path, [good, line]))


def test_empty_trace(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no requests"):
        read_trace(write(tmp_path, [""]))


def test_offsets_are_scaled_from_the_first_timestamp(prompts: Prompts) -> None:
    entries = [TraceEntry(t, 4, 2, ()) for t in (1000.0, 1500.0, 4000.0)]
    assert TraceReplay(prompts, entries, time_scale=0.5).arrivals_ns() == [
        0,
        250_000_000,
        1_500_000_000,
    ]
    with pytest.raises(WorkloadError, match="time_scale"):
        TraceReplay(prompts, entries, time_scale=0)


def test_prompts_share_exactly_their_common_hash_blocks(prompts: Prompts) -> None:
    entries = [
        TraceEntry(0, 1200, 5, (1, 2, 3)),
        TraceEntry(1, 1100, 6, (1, 2, 9)),
        TraceEntry(2, 700, 7, (1, 4)),
        TraceEntry(3, 600, 8, ()),  # no ids: all its own
    ]
    wl = TraceReplay(prompts, entries)
    reqs = [wl.next("load", None).request for _ in entries]
    assert wl.next("load", None) is None
    toks = [tokens.text_tokens(r.prompt) for r in reqs]
    assert [len(t) for t in toks] == [e.input_length for e in entries]
    assert [r.prompt_tokens for r in reqs] == [e.input_length for e in entries]
    assert [r.max_tokens for r in reqs] == [5, 6, 7, 8]

    def shared(a: list[str], b: list[str]) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    assert shared(toks[0], toks[1]) == 2 * BLOCK_TOKENS
    assert shared(toks[0], toks[2]) == BLOCK_TOKENS
    assert shared(toks[0], toks[3]) < 5  # chance agreement of a word or so at most
