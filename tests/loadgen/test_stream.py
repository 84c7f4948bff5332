"""Interpreting OpenAI streamed chunks: what counts as a token, usage, and what is an error."""

from __future__ import annotations

import json

from spark_harness.loadgen.sse import Event
from spark_harness.loadgen.stream import interpret, usage_fields
from spark_harness.tokens import count_text


def ev(t: int, obj: object) -> Event:
    return Event(t, obj if isinstance(obj, str) else json.dumps(obj))


def chat(content: str | None = None, role: str | None = None) -> dict:
    delta = {} if content is None else {"content": content}
    if role:
        delta["role"] = role
    return {"choices": [{"index": 0, "delta": delta}]}


def test_role_only_and_empty_chunks_are_not_tokens() -> None:
    events = [
        ev(1, chat(role="assistant")),
        ev(2, chat("", role="assistant")),
        ev(3, {"choices": [{"index": 0, "text": ""}]}),
        ev(4, chat("Hello")),
        ev(5, chat(" world")),
        ev(6, "[DONE]"),
    ]
    res = interpret(events, count_text)
    assert res.t_ns == [4, 5]
    assert res.text == ["Hello", " world"]
    assert res.done and res.error_kind is None


def test_multi_token_events_counted_by_the_client() -> None:
    events = [
        ev(1, {"choices": [{"text": "a b c"}]}),
        ev(2, {"choices": [{"text": " d"}]}),
        ev(3, "[DONE]"),
    ]
    assert interpret(events, count_text).tokens == [3, 1]


def test_per_chunk_usage_gives_the_servers_own_event_counts() -> None:
    # one word that the server says is 2 tokens: continuous usage wins over word counting
    events = [
        ev(1, {"choices": [{"text": "ab"}], "usage": {"completion_tokens": 2}}),
        ev(2, {"choices": [{"text": " c d"}], "usage": {"completion_tokens": 5}}),
        ev(3, "[DONE]"),
    ]
    assert interpret(events, count_text).tokens == [2, 3]


def test_usage_only_on_the_last_content_event_is_not_mistaken_for_per_event_counts() -> None:
    events = [
        ev(1, {"choices": [{"text": "a"}]}),
        ev(2, {"choices": [{"text": " b"}], "usage": {"completion_tokens": 2}}),
        ev(3, "[DONE]"),
    ]
    res = interpret(events, count_text)
    assert res.tokens == [1, 1]
    assert res.usage == {"completion_tokens": 2}


def test_reasoning_content_counts_as_output() -> None:
    events = [ev(1, {"choices": [{"delta": {"reasoning_content": "hmm"}}]}), ev(2, "[DONE]")]
    assert interpret(events, count_text).t_ns == [1]
    # the field's newer name (vLLM from 0.10 on): the first reasoning token starts TTFT
    events = [
        ev(1, {"choices": [{"delta": {"reasoning": "hmm"}}]}),
        ev(2, chat(" yes")),
        ev(3, "[DONE]"),
    ]
    res = interpret(events, count_text)
    assert res.t_ns == [1, 2] and res.tokens == [1, 1]


def test_a_null_error_field_is_no_error() -> None:
    events = [ev(1, {"choices": [{"text": "a"}], "error": None}), ev(2, "[DONE]")]
    res = interpret(events, count_text)
    assert res.error_kind is None and res.t_ns == [1]


def test_usage_fields_read_cached_and_simulator_extras() -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 8},
        "sim": {"g3_fetch_ms": 2.5, "g3_onboard_blocks": 3},
    }
    assert usage_fields(usage) == {
        "prompt_tokens": 10,
        "completion_tokens": 4,
        "cached_tokens": 8,
        "kv_g3_fetch_ms": 2.5,
        "kv_g3_onboard_blocks": 3,
    }
    assert usage_fields(None) == dict.fromkeys(usage_fields(usage))
    assert usage_fields({"prompt_tokens_details": None, "sim": "x"})["cached_tokens"] is None


def test_failures_are_reported_and_what_came_before_is_kept() -> None:
    good = ev(1, {"choices": [{"text": "a"}]})
    cases = {
        "bad_sse": [good, ev(2, "{not json")],
        "other": [good, ev(2, {"error": {"message": "boom"}})],
    }
    for kind, events in cases.items():
        res = interpret(events, count_text)
        assert res.error_kind == kind
        assert res.t_ns == [1]
    res = interpret([good], count_text)
    assert (res.error_kind, res.error) == ("bad_sse", "stream ended without data: [DONE]")
    res = interpret([good, ev(2, "[DONE]"), good], count_text)
    assert res.error == "data after [DONE]"
    res = interpret([ev(1, "[1, 2]")], count_text)
    assert res.error_kind == "bad_sse"
    assert "boom" in interpret(cases["other"], count_text).error


def test_events_decode_as_json_loads_judges_them() -> None:
    """The fast decoder accepts and refuses what ``json.loads`` does: whitespace
    around the value is fine, a second value or a value cut short is not JSON, and a
    hostile nesting fails its stream (not the recorder, which would stop the run)."""
    done = ev(9, "[DONE]")
    ok = interpret([ev(1, ' {"choices": [{"text": "a b"}]} \t'), done], count_text)
    assert (ok.error_kind, ok.tokens) == (None, [2])
    for data in ('{"choices": []} {}', '{"choices": [', "{} x", "[" * 100_000 + "]" * 100_000):
        res = interpret([ev(1, {"choices": [{"text": "a"}]}), ev(2, data), done], count_text)
        assert res.error_kind == "bad_sse", data[:20]
        assert res.t_ns == [1]
    deep = interpret([ev(1, '{"x":' + "[" * 100_000 + "]" * 100_000 + "}"), done], count_text)
    assert "nests too deeply" in (deep.error or "")


def test_what_only_json_loads_accepts_is_still_accepted() -> None:
    """msgspec refuses ``NaN``, a lone surrogate's escape and a number past a double's
    range, which ``json.loads`` takes: such an event decodes as it did before."""
    done = ev(9, "[DONE]")
    for data, text in (
        ('{"choices": [{"text": "a b"}], "usage": {"completion_tokens": NaN}}', "a b"),
        ('{"choices": [{"text": "a \\ud800"}]}', "a \ud800"),
        ('{"choices": [{"text": "a"}], "x": 1e999}', "a"),
    ):
        res = interpret([ev(1, data), done], count_text)
        assert (res.error_kind, res.text) == (None, [text]), data
