"""Sessioned multi-turn chat (H5): sessions x turns with growing history and think time.

``sessions`` conversations are live at once. Each has at most one turn outstanding, so
closed-loop users serve a pool of sessions: a free user takes the session whose next
turn is due first (waiting for it if none is due yet). A turn is due ``think_s`` after
the session's previous turn finished; the wait between due and sent is client queueing.

A turn's prompt is the whole history (every earlier user message and the server's
actual reply) plus a new user message: the first message has ``context_tokens`` tokens
(default ``turn_tokens``) and starts with the session's nonce; later ones have
``turn_tokens``. After ``turns`` turns a session is replaced by a fresh one (new
``session_id``), so the load goes on and the KV working set stays about
``sessions`` x one conversation.

``reuse_ratio`` (default 1) is the probability that a follow-up turn's history is
reusable: otherwise the session's nonce is replaced before the turn, so the prompt keeps
its length (same compute) but no cached prefix matches it past the first token.
"""

from __future__ import annotations

import heapq
import random
import time
from dataclasses import dataclass, field
from itertools import chain, islice

from spark_harness.workloads.base import Job, Prompt, Prompts, Request, Workload


@dataclass
class _Session:
    no: int
    due_ns: int
    epoch: int = 0  # bumps when reuse is broken: a new nonce heads the history
    turn: int = 0
    history: list[tuple[str, str]] = field(default_factory=list)  # (role, text)
    pending: str | None = None  # the user message of the outstanding turn

    @property
    def session_id(self) -> str:
        return f"s{self.no}"


class ChatSessions(Workload):
    """See the module docstring."""

    closed_loop_only = True

    def __init__(
        self,
        prompts: Prompts,
        sessions: int,
        turns: int,
        turn_tokens: int,
        output_tokens: int,
        think_s: float = 0.0,
        reuse_ratio: float = 1.0,
        context_tokens: int | None = None,
    ):
        self.prompts = prompts
        self.turns = turns
        self.turn_tokens = turn_tokens
        self.first_tokens = context_tokens or turn_tokens
        self.output_tokens = output_tokens
        self.think_ns = round(think_s * 1e9)
        self.reuse_ratio = reuse_ratio
        self.max_users = sessions
        self._rng = random.Random(f"{prompts.seed}:chat-reuse")
        self._started = 0
        now = time.monotonic_ns()
        self._heap: list[tuple[int, int, _Session]] = []
        for _ in range(sessions):
            self._push(self._new_session(now))

    def _new_session(self, due_ns: int) -> _Session:
        s = _Session(no=self._started, due_ns=due_ns)
        self._started += 1
        return s

    def _push(self, s: _Session) -> None:
        heapq.heappush(self._heap, (s.due_ns, s.no, s))

    def _first_message(self, s: _Session) -> str:
        p = self.prompts
        head = [p.nonce(f"chat:{s.no}:{s.epoch}")]
        return p.content(chain(head, p.stream(f"chat:{s.no}:0")), self.first_tokens)

    def _prompt(self, s: _Session, message: str) -> Prompt:
        turns = [*s.history, ("user", message)]
        if self.prompts.api == "chat":
            return [{"role": role, "content": text} for role, text in turns]
        return " ".join(text for _, text in turns)

    def next(self, phase: str, user: int | None) -> Job:
        _, _, s = heapq.heappop(self._heap)
        p = self.prompts
        if s.turn == 0:
            message = self._first_message(s)
        else:
            if self._rng.random() >= self.reuse_ratio:
                s.epoch += 1
                s.history[0] = ("user", self._first_message(s))
            message = p.content(p.stream(f"chat:{s.no}:{s.turn}"), self.turn_tokens)
        s.pending = message
        prompt = self._prompt(s, message)
        request = Request(
            prompt, self.output_tokens, p.count(prompt), session_id=s.session_id, turn=s.turn
        )
        return Job(request, due_ns=s.due_ns, handle=s)

    def finished(self, job: Job, reply: str | None, now_ns: int) -> None:
        s: _Session = job.handle
        if reply is None:  # failed turn: keep the history's shape with a stand-in reply
            words = self.prompts.stream(f"chat:{s.no}:{s.turn}:reply")
            reply = " ".join(islice(words, self.output_tokens))
        assert s.pending is not None
        s.history += [("user", s.pending), ("assistant", reply)]
        s.pending = None
        s.turn += 1
        if s.turn >= self.turns:
            s = self._new_session(now_ns)
        else:
            s.due_ns = now_ns + self.think_ns
        self._push(s)
