"""Fixed-context and shared-prefix workloads.

fixed_context: each closed-loop user ``u`` has one prompt of ``context_tokens`` tokens and
re-sends it on every request: a nonce unique to (run seed, ``u``) at the **start** (when
``nonce`` is true), then a body shared by all users. So each user's prompt is a reusable
prefix (a tiered server may serve it from G1/G2/G3) and the KV working set is
users x context_tokens. Without the nonce every user sends the same prompt from token 0.
Open-loop arrivals have no user: each gets its own nonce (``arrival:i``).

shared_prefix: requests fall in ``prefix_groups`` groups (by user, or by arrival for open
loop); a group's requests share their first ``prefix_tokens`` tokens (a group tag, then a
group body); the rest is unique per request (a nonce, then filler). So exactly the
group prefix is reusable.
"""

from __future__ import annotations

from itertools import chain

from spark_harness.workloads.base import Job, Prompt, Prompts, Request, Workload, WorkloadError


class FixedContext(Workload):
    """Each user re-sends one prompt; see the module docstring."""

    def __init__(self, prompts: Prompts, context_tokens: int, output_tokens: int, nonce: bool):
        self.prompts = prompts
        self.context_tokens = context_tokens
        self.output_tokens = output_tokens
        self.nonce = nonce
        self._by_user: dict[int | None, tuple[Prompt, int]] = {}
        self._arrivals = 0

    def prompt_for(self, user: int | None) -> tuple[Prompt, int]:
        """The prompt user ``user`` sends (None: the next open-loop arrival's prompt)."""
        if user is None and self.nonce:
            key: str | None = f"arrival:{self._arrivals}"
            self._arrivals += 1
        else:
            cached = self._by_user.get(user)
            if cached is not None:
                return cached
            key = f"user:{user}" if self.nonce else None
        built = self.prompts.with_nonce(key, "body", self.context_tokens)
        if key is None or user is not None:
            self._by_user[user] = built
        return built

    def adapter_for(self, phase: str, user: int | None) -> str | None:
        """The LoRA adapter of the next request; the base model here."""
        return None

    def next(self, phase: str, user: int | None) -> Job:
        prompt, n = self.prompt_for(user)
        adapter = self.adapter_for(phase, user)
        return Job(Request(prompt, self.output_tokens, n, adapter=adapter))


class SharedPrefix(Workload):
    """Groups of requests sharing exactly ``prefix_tokens``; see the module docstring."""

    def __init__(
        self,
        prompts: Prompts,
        context_tokens: int,
        output_tokens: int,
        prefix_groups: int,
        prefix_tokens: int,
    ):
        if prefix_tokens > context_tokens:
            raise WorkloadError(
                f"workload.prefix_tokens ({prefix_tokens}) exceeds "
                f"workload.context_tokens ({context_tokens})"
            )
        self.prompts = prompts
        self.context_tokens = context_tokens
        self.output_tokens = output_tokens
        self.prefix_groups = prefix_groups
        self.prefix_tokens = prefix_tokens
        self._prefixes: dict[int, tuple[str, ...]] = {}
        self._count = 0

    def group_prefix(self, group: int) -> tuple[str, ...]:
        """The words of a group's shared prefix (``prefix_tokens`` tokens as a prompt)."""
        words = self._prefixes.get(group)
        if words is None:
            p = self.prompts
            tag = p.nonce(f"group:{group}")
            text = p.content(chain([tag], p.stream(f"group:{group}")), self.prefix_tokens)
            words = self._prefixes[group] = tuple(text.split())
        return words

    def next(self, phase: str, user: int | None) -> Job:
        i = self._count
        self._count += 1
        group = (i if user is None else user) % self.prefix_groups
        p = self.prompts
        words = chain(
            self.group_prefix(group), [p.nonce(f"request:{i}")], p.head("body", self.context_tokens)
        )
        prompt, n = p.single(words, self.context_tokens)
        return Job(Request(prompt, self.output_tokens, n))
