"""Prompt and session generators: what the load generator sends.

``build_workload(spec, server_is_sim)`` turns a resolved point spec's ``workload``
section into a :class:`Workload`. Kinds: ``fixed_context``, ``shared_prefix``, ``chat``,
``lora``, ``trace``, ``rehydrate`` (each documented in its module). Prompts are built
from the corpus in ``inputs/`` with exact token counts on the simulator or with a
configured Hugging Face tokenizer, approximate otherwise (:mod:`.counting`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spark_harness.inputs import read_adapters
from spark_harness.workloads.base import (
    ORDINARY_PHASES,
    Job,
    Prompts,
    Request,
    Workload,
    WorkloadError,
)
from spark_harness.workloads.chat import ChatSessions
from spark_harness.workloads.corpus import DEFAULT_CORPUS, InputError, load_words
from spark_harness.workloads.counting import Counter, make_counter
from spark_harness.workloads.fixed import FixedContext, SharedPrefix
from spark_harness.workloads.lora import LoraMix
from spark_harness.workloads.rehydrate import Rehydrate
from spark_harness.workloads.trace import TraceReplay, read_trace

__all__ = [
    "ORDINARY_PHASES",
    "Counter",
    "InputError",
    "Job",
    "Prompts",
    "Request",
    "Workload",
    "WorkloadError",
    "build_workload",
]

DEFAULT_CONTEXT_TOKENS = 256
DEFAULT_OUTPUT_TOKENS = 16
DEFAULT_ADAPTERS = "inputs/lora/adapters.txt"


def _need(wl: Mapping[str, Any], key: str) -> Any:
    if key not in wl:
        raise WorkloadError(f"workload.{key} is required for kind {wl['kind']!r}")
    return wl[key]


def build_workload(spec: Mapping[str, Any], server_is_sim: bool) -> tuple[Workload, Counter]:
    """The workload of a resolved point spec, and the token counter it builds prompts with.

    ``server_is_sim``: the server tokenizes like the embedded simulator (exact counts).
    Raises WorkloadError / InputError with the offending key or file.
    """
    wl = spec["workload"]
    kind = wl.get("kind")
    seed = int(spec.get("seed", 0))
    counter = make_counter(wl.get("tokenizer"), server_is_sim)
    api = wl.get("api", "chat" if kind == "chat" else "completions")
    prompts = Prompts(counter, api, load_words(wl.get("corpus", DEFAULT_CORPUS)), seed)
    ctx = int(wl.get("context_tokens", DEFAULT_CONTEXT_TOKENS))
    out = int(wl.get("output_tokens", DEFAULT_OUTPUT_TOKENS))
    workload: Workload
    if kind == "fixed_context":
        workload = FixedContext(
            prompts,
            ctx,
            out,
            wl.get("nonce", False),
            float(wl.get("output_tokens_spread", 0.0)),
            int(wl.get("prompts_per_user", 1)),
            float(wl.get("reuse_ratio", 1.0)),
            bool(wl.get("warm_every_prompt", False)),
        )
    elif kind == "shared_prefix":
        workload = SharedPrefix(
            prompts, ctx, out, int(_need(wl, "prefix_groups")), int(_need(wl, "prefix_tokens"))
        )
    elif kind == "lora":
        adapters = read_adapters(wl.get("adapters", DEFAULT_ADAPTERS))
        workload = LoraMix(
            prompts,
            ctx,
            out,
            bool(wl.get("nonce", False)),
            adapters,
            wl.get("adapter_cache", "cold"),
            float(wl.get("output_tokens_spread", 0.0)),
        )
    elif kind == "chat":
        workload = ChatSessions(
            prompts,
            sessions=int(_need(wl, "sessions")),
            turns=int(_need(wl, "turns")),
            turn_tokens=int(_need(wl, "turn_tokens")),
            output_tokens=out,
            think_s=float(wl.get("think_s", 0.0)),
            reuse_ratio=float(wl.get("reuse_ratio", 1.0)),
            context_tokens=wl.get("context_tokens"),
        )
    elif kind == "trace":
        workload = TraceReplay(
            prompts, read_trace(_need(wl, "trace")), float(wl.get("time_scale", 1.0))
        )
    elif kind == "rehydrate":
        workload = Rehydrate(
            prompts,
            sessions=int(_need(wl, "sessions")),
            context_tokens=ctx,
            output_tokens=out,
            thrash_sessions=wl.get("thrash_sessions"),
            turn_tokens=int(wl.get("turn_tokens", 16)),
        )
    else:
        raise WorkloadError(f"workload.kind: unknown kind {kind!r}")
    return workload, counter
