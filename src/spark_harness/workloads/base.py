"""What a workload hands the load generator, and the prompt factory all workloads share.

A workload decides *what* is sent (prompt, output length, adapter, session and turn);
the load generator decides *when* (closed loop, open loop, trace schedule) and measures.
The load generator asks ``next(phase, user)`` for a job whenever a user slot or an
arrival needs one, and reports each finished job back with ``finished`` so stateful
workloads (chat history, think time) can go on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from spark_harness.workloads.corpus import nonce, word_stream
from spark_harness.workloads.counting import Counter

#: Phases of ordinary workloads; the analysed window is ``load``.
ORDINARY_PHASES = ("warmup", "load", "cooldown")

Prompt = str | list[dict[str, str]]


class WorkloadError(ValueError):
    """The workload settings are inconsistent; the message names the key."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request: the prompt in its API's form (text for ``/v1/completions``, messages
    for ``/v1/chat/completions``) and its identity in the run."""

    prompt: Prompt
    max_tokens: int
    prompt_tokens: int  # as the client built and counted it
    adapter: str | None = None  # LoRA adapter, sent as the request's "model"
    session_id: str | None = None
    turn: int | None = None

    @property
    def chat(self) -> bool:
        return not isinstance(self.prompt, str)


@dataclass(slots=True)
class Job:
    """A request plus when it may be sent and the workload's own handle for it."""

    request: Request
    due_ns: int | None = None  # monotonic ns before which it must not be sent (think time)
    handle: Any = field(default=None, compare=False)
    #: counts toward the warm-up's minimum (:meth:`Workload.warmup_min_requests`)
    warms: bool = True


class Workload(ABC):
    """A source of requests for the load generator."""

    #: the phases this workload runs through, in order
    phases: tuple[str, ...] = ORDINARY_PHASES
    #: True when each phase ends once ``next`` returns None (count-bounded phases, with a
    #: drain between them) rather than on time
    finite_phases: bool = False
    #: True when requests depend on earlier answers (sessions), so open loop makes no sense
    closed_loop_only: bool = False
    #: at most this many users can be busy at once (e.g. one outstanding turn per session)
    max_users: int | None = None
    #: True when what a request asks for depends on its phase (a cold-LoRA warm-up sends
    #: the base model): a job built for a phase whose time ran out while it waited to be
    #: sent is built again for the phase it is sent in
    phase_shapes_requests: bool = False

    def warmup_min_requests(self, users: int | None) -> int:
        """The warm-up lasts until at least this many of its requests that warm (``Job.warms``)
        have finished (``users``: the closed loop's, None in open loop), whatever its
        duration."""
        return 0

    @abstractmethod
    def next(self, phase: str, user: int | None) -> Job | None:
        """The next job for a closed-loop ``user`` (or an open-loop arrival, ``None``);
        ``None`` when this phase has nothing more to send."""

    def finished(self, job: Job, reply: str | None, now_ns: int) -> None:  # noqa: B027
        """``job`` finished at monotonic ``now_ns`` with ``reply`` text (None on error).
        Stateless workloads ignore it."""

    def arrivals_ns(self) -> Iterable[int] | None:
        """Offsets of a workload's own send schedule (trace replay), else None."""
        return None


@dataclass(frozen=True)
class Prompts:
    """Builds prompts of exact (or, where the tokenizer is unknown, approximate) length."""

    counter: Counter
    api: str  # completions | chat
    words: tuple[str, ...]
    seed: int
    _heads: dict[tuple[str, int], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def stream(self, key: str) -> Iterator[str]:
        """Endless words for ``key``; equal keys give equal words (shared prefixes)."""
        return word_stream(self.words, self.seed, key)

    def nonce(self, key: str) -> str:
        return nonce(self.seed, key)

    def head(self, key: str, n: int) -> tuple[str, ...]:
        """The first ``n`` words of ``stream(key)``, cached: for text reused by many
        requests (the shared body, trace blocks), so building a prompt stays cheap inside
        the send path. One-off text uses ``stream``."""
        got = self._heads.get((key, n))
        if got is None:
            got = self._heads[(key, n)] = tuple(islice(self.stream(key), n))
        return got

    def content(self, words: Iterable[str], n: int) -> str:
        """Text that makes one message (chat) or the prompt (completions) ``n`` tokens."""
        return self.counter.fit(words, n - self.counter.chat_overhead if self.api == "chat" else n)

    def single(self, words: Iterable[str], n: int) -> tuple[Prompt, int]:
        """A one-message prompt of ``n`` tokens and its client-side count."""
        text = self.content(words, n)
        if self.api == "chat":
            messages = [{"role": "user", "content": text}]
            return messages, self.counter.count_chat(messages)
        return text, self.counter.count_text(text)

    def with_nonce(
        self, key: str | None, body_key: str, n: int, tail: tuple[str, int] | None = None
    ) -> tuple[Prompt, int]:
        """``n`` tokens: a nonce for ``key`` first (when given), then the shared body; with
        ``tail`` (stream key, k) the body's last k tokens are words of that stream instead."""
        head = [self.nonce(key)] if key is not None else []
        if tail is None:
            return self.single(chain(head, self.head(body_key, n)), n)
        stream, k = tail
        body = self.head(body_key, max(0, n - len(head) - k))
        return self.single(chain(head, body, self.stream(stream)), n)

    def count(self, prompt: Prompt) -> int:
        if isinstance(prompt, str):
            return self.counter.count_text(prompt)
        return self.counter.count_chat(prompt)
