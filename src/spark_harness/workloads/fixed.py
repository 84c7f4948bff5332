"""Fixed-context and shared-prefix workloads.

fixed_context: each closed-loop user ``u`` has one prompt of ``context_tokens`` tokens and
re-sends it on every request: a nonce unique to (run seed, ``u``) at the **start** (when
``nonce`` is true or ``user``), then a body shared by all users. So each user's prompt is a
reusable prefix (a tiered server may serve it from G1/G2/G3) and the KV working set is
users x context_tokens. Without the nonce every user sends the same prompt from token 0.
``prompts_per_user`` k > 1 gives each user k prompts (own nonces) sent in turn, so the
working set is users x k x context_tokens while only ``users`` sequences run at once: it
can overflow G1 + G2 into G3 without G1 being too small for the running sequences.
``reuse_ratio`` r < 1 renews a prompt's last RENEWED_TAIL_TOKENS before a send with
probability 1 - r (a new question on the same context): the prefix is still reused, and
the new tail brings new blocks that are offloaded later, so a tiered stack shows offloads
as well as onboards in every window (its copies are inclusive, so a working set that
only cycles would be onboarded but never offloaded again).
``warm_every_prompt`` makes the warm-up last until each user's k prompts have been
answered once (users x k first sends): the first (full) prefills that a reusing stack
then serves from its tiers. Only first sends count: a user whose prompts are cached
answers its re-sends in half the time, so a count of all answers ended the warm-up while
a slower user's last first send was still in flight. Without it a long context's first
prefills ran into the load window (at 1,024 tokens, ~0.75 s past a 1 s warm-up), where
the steady-state cut spent half the window removing them.
With ``nonce: request`` every request gets its own nonce, so nothing is reusable on any
stack: the fair A-vs-B comparison of H0, where a stack that reuses KV and one that does not
must do the same work. Open-loop arrivals have no user: each gets its own nonce
(``arrival:i``).
``output_tokens_spread`` s > 0 draws each request's output length uniformly from
``[n(1-s), n(1+s)]`` (seeded per user, so repetitions with one seed agree): real requests
differ in length, and identical ones make a saturated closed loop run in lock-step
waves where every request waits the same, hiding the queueing tail.

shared_prefix: requests fall in ``prefix_groups`` groups (by user, or by arrival for open
loop); a group's requests share their first ``prefix_tokens`` tokens (a group tag, then a
group body); the rest is unique per request (a nonce, then filler). So exactly the
group prefix is reusable.
"""

from __future__ import annotations

import random
from itertools import chain

from spark_harness.workloads.base import Job, Prompt, Prompts, Request, Workload, WorkloadError

#: Tokens at the end of a prompt that a renewal replaces (``reuse_ratio``): two blocks of
#: 16, a new question on the same context.
RENEWED_TAIL_TOKENS = 32


def renewed(key: str | None, epoch: int) -> tuple[str, int] | None:
    """The tail a prompt's ``epoch``-th renewal ends with: (word stream key, tokens)."""
    return None if key is None or epoch == 0 else (f"{key}:renewal:{epoch}", RENEWED_TAIL_TOKENS)


def nonce_scope(nonce: bool | str) -> str | None:
    """``workload.nonce`` as a scope: None (no nonce), ``user`` (true) or ``request``."""
    if nonce in (False, None):
        return None
    if nonce is True or nonce == "user":
        return "user"
    if nonce == "request":
        return "request"
    raise WorkloadError(f"workload.nonce must be true, false, 'user' or 'request', got {nonce!r}")


class FixedContext(Workload):
    """Each user re-sends one prompt; see the module docstring."""

    def __init__(
        self,
        prompts: Prompts,
        context_tokens: int,
        output_tokens: int,
        nonce: bool | str,
        output_tokens_spread: float = 0.0,
        prompts_per_user: int = 1,
        reuse_ratio: float = 1.0,
        warm_every_prompt: bool = False,
    ):
        if not 0.0 <= output_tokens_spread < 1.0:
            raise WorkloadError(
                f"workload.output_tokens_spread must be in [0, 1), got {output_tokens_spread}"
            )
        if prompts_per_user < 1 or not 0.0 <= reuse_ratio <= 1.0:
            raise WorkloadError(
                "workload.prompts_per_user must be >= 1 and workload.reuse_ratio in [0, 1],"
                f" got {prompts_per_user} and {reuse_ratio}"
            )
        self.prompts = prompts
        self.context_tokens = context_tokens
        self.output_tokens = output_tokens
        self.spread = output_tokens_spread
        self.nonce = nonce_scope(nonce)
        self._sent = 0
        self.prompts_per_user = prompts_per_user
        self.reuse_ratio = reuse_ratio
        self.warm_every_prompt = warm_every_prompt
        self._turn: dict[int | None, int] = {}  # user -> sends so far (picks the prompt)
        self._epochs: dict[tuple[int | None, int], int] = {}  # (user, prompt) -> renewals
        self._renew: dict[int | None, random.Random] = {}
        self._by_user: dict[tuple[int | None, int], tuple[int, tuple[Prompt, int]]] = {}
        self._lengths: dict[int | None, random.Random] = {}
        self._arrivals = 0

    def warmup_min_requests(self, users: int | None) -> int:
        """With ``warm_every_prompt``, every user's first sends answered (closed loop)."""
        return users * self.prompts_per_user if self.warm_every_prompt and users else 0

    def output_for(self, user: int | None) -> int:
        """The next request's output length: fixed, or drawn from the spread."""
        if not self.spread:
            return self.output_tokens
        rng = self._lengths.get(user)
        if rng is None:
            rng = self._lengths[user] = random.Random(f"{self.prompts.seed}:out:{user}")
        lo = max(1, round(self.output_tokens * (1 - self.spread)))
        hi = max(lo, round(self.output_tokens * (1 + self.spread)))
        return rng.randint(lo, hi)

    def prompt_for(self, user: int | None) -> tuple[Prompt, int]:
        """The prompt user ``user`` sends (None: the next open-loop arrival's prompt)."""
        if self.nonce == "request":
            self._sent += 1
            return self.prompts.with_nonce(
                f"request:{user}:{self._sent}", "body", self.context_tokens
            )
        if user is None and self.nonce:
            self._arrivals += 1
            return self.prompts.with_nonce(
                f"arrival:{self._arrivals - 1}", "body", self.context_tokens
            )
        slot, epoch = self._pick(user)
        cached = self._by_user.get((user, slot))
        if cached is not None and cached[0] == epoch:
            return cached[1]
        key = None
        if self.nonce:
            key = f"user:{user}" if slot == 0 else f"user:{user}:{slot}"
        built = self.prompts.with_nonce(key, "body", self.context_tokens, renewed(key, epoch))
        self._by_user[(user, slot)] = (epoch, built)
        return built

    def _pick(self, user: int | None) -> tuple[int, int]:
        """The user's next prompt (in turn) and its epoch, renewed at 1 - reuse_ratio."""
        turn = self._turn.get(user, 0)
        self._turn[user] = turn + 1
        slot = turn % self.prompts_per_user
        epoch = self._epochs.get((user, slot), 0)
        if self.reuse_ratio < 1.0 and turn >= self.prompts_per_user:  # first sends are new
            rng = self._renew.get(user)
            if rng is None:
                rng = self._renew[user] = random.Random(f"{self.prompts.seed}:renew:{user}")
            if rng.random() >= self.reuse_ratio:
                epoch = self._epochs[(user, slot)] = epoch + 1
        return slot, epoch

    def adapter_for(self, phase: str, user: int | None) -> str | None:
        """The LoRA adapter of the next request; the base model here."""
        return None

    def next(self, phase: str, user: int | None) -> Job:
        prompt, n = self.prompt_for(user)
        adapter = self.adapter_for(phase, user)
        # with warm_every_prompt only a user's first sends count toward the warm-up
        first = user is not None and self._turn.get(user, 0) <= self.prompts_per_user
        warms = first or not self.warm_every_prompt
        return Job(Request(prompt, self.output_for(user), n, adapter=adapter), warms=warms)


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
