"""What an OpenAI-compatible streamed completion said: content events, usage, the end.

Rules (see docs/REFERENCE.md, "Measuring streamed responses correctly"):

- a *content event* carries non-empty text (``choices[].text`` for completions,
  ``choices[].delta.content``, ``reasoning_content`` or ``reasoning`` for chat); a
  role-only first chunk or an empty string is not a token and does not start TTFT;
- an event's tokens come from the server when it reports cumulative usage on every chunk
  (``continuous_usage_stats``), else from the client's counter (one event may carry
  several tokens);
- the last ``usage`` object seen gives the server's prompt, completion and cached tokens
  (``prompt_tokens_details.cached_tokens``) and the simulator's ``sim.g3_fetch_ms`` and
  ``sim.g3_onboard_blocks``;
- ``data: [DONE]`` ends a well-formed stream; an ``error`` object (not null) in the
  stream, a payload that is not JSON, or a stream that stops without ``[DONE]`` is a
  ``bad_sse`` (or ``other``, for a server-reported error) failure whose measurements are
  kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from spark_harness.loadgen.sse import Event

DONE = "[DONE]"
_loads = json.JSONDecoder().decode
#: msgspec's JSON decoder: one C call per event, about half the time of the standard
#: library's C scanner (which wants a Python frame and a bounds check around it). An
#: event it rejects goes to ``json``, which says why, or takes what only it accepts
#: (``NaN``, a lone surrogate's escape, a number past a double's range)
_decode = msgspec.json.Decoder().decode


@dataclass(slots=True)
class StreamResult:
    t_ns: list[int] = field(default_factory=list)  # content events' arrival
    tokens: list[int] = field(default_factory=list)  # content events' tokens
    text: list[str] = field(default_factory=list)  # content events' text
    first: Event | None = None  # the first content event
    usage: dict[str, Any] | None = None
    done: bool = False
    error_kind: str | None = None
    error: str | None = None

    def fail(self, kind: str, reason: str) -> None:
        if self.error_kind is None:  # keep the first failure
            self.error_kind, self.error = kind, reason


def _choice_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    text = choice.get("text")
    if isinstance(text, str):
        return text
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return ""
    content = delta.get("content")
    reasoning = delta.get("reasoning_content")
    if reasoning is None:  # the field's newer name (vLLM from 0.10 on, OpenRouter)
        reasoning = delta.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        return reasoning + (content if isinstance(content, str) else "")
    return content if isinstance(content, str) else ""


def _text(choices: Any) -> str:
    if not isinstance(choices, list) or not choices:
        return ""
    if len(choices) == 1:  # the usual case, without building a list
        choice = choices[0]
        if type(choice) is dict:  # a completion's text: no more calls
            text = choice.get("text")
            if type(text) is str:
                return text
        return _choice_text(choice)
    return "".join(_choice_text(c) for c in choices)


def interpret(events: Sequence[Event], count_piece: Callable[[str], int]) -> StreamResult:
    """Interpret the events of one streamed completion."""
    res = StreamResult()
    cumulative: list[int | None] = []  # per content event: server's completion tokens so far
    # bound once: this loop runs once per streamed token in the recorder
    add_t, add_text, add_tokens, add_cum = (
        res.t_ns.append,
        res.text.append,
        res.tokens.append,
        cumulative.append,
    )
    for ev in events:
        if res.done:
            res.fail("bad_sse", "data after [DONE]")
            break
        data = ev.data
        if data == DONE or (data[:1] != "{" and data.strip() == DONE):
            res.done = True
            continue
        try:
            obj = _decode(data)
        except (msgspec.DecodeError, RecursionError):  # json says why, or takes it
            try:
                obj = _loads(data)
            except json.JSONDecodeError as e:
                res.fail("bad_sse", f"event is not JSON ({e.msg}): {data[:80]!r}")
                break
            except RecursionError:  # a hostile server's nesting: its record, not the run, fails
                res.fail("bad_sse", f"event nests too deeply to decode: {data[:80]!r}")
                break
        if type(obj) is not dict:
            res.fail("bad_sse", f"event is not a JSON object: {data[:80]!r}")
            break
        if ev.event == "error" or obj.get("error") is not None:
            err = obj.get("error", obj)
            msg = err.get("message", err) if isinstance(err, dict) else err
            res.fail("other", f"server error in stream: {str(msg)[:200]}")
            break
        usage = obj.get("usage")
        if type(usage) is not dict:
            usage = None
        else:
            res.usage = usage
        text = _text(obj.get("choices"))
        if text:
            completion = None if usage is None else usage.get("completion_tokens")
            if res.first is None:
                res.first = ev
            add_t(ev.t_ns)
            add_text(text)
            add_tokens(count_piece(text))
            add_cum(completion if isinstance(completion, int) else None)
    # usage on every content event (continuous usage stats): the server's own per-event counts
    if cumulative and all(c is not None for c in cumulative):
        prev = 0
        for i, c in enumerate(cumulative):
            assert c is not None
            res.tokens[i], prev = c - prev, c
    if not res.done and res.error_kind is None:
        res.fail("bad_sse", "stream ended without data: [DONE]")
    return res


def usage_fields(usage: dict[str, Any] | None) -> dict[str, Any]:
    """The request-record fields a server's ``usage`` object provides (None if absent)."""
    u = usage or {}
    details = u.get("prompt_tokens_details")
    sim = u.get("sim")
    details = details if isinstance(details, dict) else {}
    sim = sim if isinstance(sim, dict) else {}

    def num(v: Any, cast: type) -> Any:
        return cast(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    return {
        "prompt_tokens": num(u.get("prompt_tokens"), int),
        "completion_tokens": num(u.get("completion_tokens"), int),
        "cached_tokens": num(details.get("cached_tokens"), int),
        "kv_g3_fetch_ms": num(sim.get("g3_fetch_ms"), float),
        "kv_g3_onboard_blocks": num(sim.get("g3_onboard_blocks"), int),
    }
