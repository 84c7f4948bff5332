"""The H9 re-hydration scenario: populate -> thrash -> replay.

- populate: ``sessions`` sessions (``s0`` ...), one request each: a prompt of
  ``context_tokens`` tokens starting with the session's nonce, so its KV is cached;
- thrash: ``thrash_sessions`` unique sessions (``t0`` ...) of the same size push the
  first ones out of the faster tiers (default 4 x sessions);
- replay: the first sessions again, turn 1: the same prompt plus a short new turn of
  ``turn_tokens`` tokens (default 16), so the cached prefix is the whole populate prompt.
  Replay TTFT is the measurement: re-hydrated from host/disk, or recomputed.

Each phase sends every one of its requests once and ends when they have all finished.
"""

from __future__ import annotations

from collections import deque

from spark_harness.workloads.base import Job, Prompt, Prompts, Request, Workload

PHASES = ("populate", "thrash", "replay")


class Rehydrate(Workload):
    """See the module docstring."""

    phases = PHASES
    finite_phases = True
    closed_loop_only = True

    def __init__(
        self,
        prompts: Prompts,
        sessions: int,
        context_tokens: int,
        output_tokens: int,
        thrash_sessions: int | None = None,
        turn_tokens: int = 16,
    ):
        self.prompts = prompts
        self.context_tokens = context_tokens
        self.output_tokens = output_tokens
        self.turn_tokens = turn_tokens
        thrash = 4 * sessions if thrash_sessions is None else thrash_sessions
        self._queues: dict[str, deque[tuple[str, int]]] = {
            "populate": deque((f"s{i}", 0) for i in range(sessions)),
            "thrash": deque((f"t{i}", 0) for i in range(thrash)),
            "replay": deque((f"s{i}", 1) for i in range(sessions)),
        }

    def first_prompt(self, session_id: str) -> tuple[Prompt, int]:
        return self.prompts.with_nonce(f"h9:{session_id}", "body", self.context_tokens)

    def replay_prompt(self, session_id: str) -> tuple[Prompt, int]:
        """The session's first prompt followed by a new user turn."""
        p = self.prompts
        first, _ = self.first_prompt(session_id)
        turn = p.content(p.stream(f"h9:{session_id}:turn1"), self.turn_tokens)
        prompt: Prompt
        if isinstance(first, str):
            prompt = f"{first} {turn}"
        else:
            prompt = [*first, {"role": "user", "content": turn}]
        return prompt, p.count(prompt)

    def next(self, phase: str, user: int | None) -> Job | None:
        queue = self._queues.get(phase)
        if not queue:
            return None
        session_id, turn = queue.popleft()
        prompt, n = self.replay_prompt(session_id) if turn else self.first_prompt(session_id)
        return Job(Request(prompt, self.output_tokens, n, session_id=session_id, turn=turn))
