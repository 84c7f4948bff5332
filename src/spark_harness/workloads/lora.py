"""LoRA adapter mixes (H1).

The adapter list is a file (``inputs/lora/adapters.txt``): one adapter per line,
``name [weight]``; the weight is the adapter's share of requests (default 1). A request
names its adapter as its ``"model"`` and records it in ``adapter``.

Prompts are those of fixed_context (one per user; ``output_tokens_spread`` as there).
``workload.adapter_cache``:

- ``warm``: warm-up first touches every adapter once (round robin), so the load window
  measures cached adapters; warm-up lasts until all of those requests have finished;
- ``cold`` (default): warm-up uses the base model only, so the load window sees each
  adapter's first, cold load.

In the load window each user draws adapters from the mix with its own seeded stream, so
a user's sequence of adapters is the same in every repetition with the same seed.
"""

from __future__ import annotations

import random
from bisect import bisect
from itertools import accumulate

from spark_harness.inputs import Adapter
from spark_harness.workloads.base import Prompts, WorkloadError
from spark_harness.workloads.fixed import FixedContext


class AdapterMix:
    """Weighted, seeded draws from an adapter list, one stream per user."""

    def __init__(self, adapters: list[Adapter], seed: int):
        self.adapters = adapters
        self._cum = list(accumulate(a.weight for a in adapters))
        self._seed = seed
        self._rngs: dict[int | None, random.Random] = {}

    def draw(self, user: int | None) -> str:
        rng = self._rngs.get(user)
        if rng is None:
            rng = self._rngs[user] = random.Random(f"{self._seed}:lora:{user}")
        return self.adapters[bisect(self._cum, rng.random() * self._cum[-1])].name


class LoraMix(FixedContext):
    """fixed_context prompts, each request sent to an adapter of the mix."""

    phase_shapes_requests = True  # a cold warm-up's requests go to the base model

    def __init__(
        self,
        prompts: Prompts,
        context_tokens: int,
        output_tokens: int,
        nonce: bool,
        adapters: list[Adapter],
        adapter_cache: str,
        output_tokens_spread: float = 0.0,
    ):
        super().__init__(prompts, context_tokens, output_tokens, nonce, output_tokens_spread)
        if adapter_cache not in ("cold", "warm"):
            raise WorkloadError(f"workload.adapter_cache: {adapter_cache!r} is not cold or warm")
        self.mix = AdapterMix(adapters, prompts.seed)
        self.adapter_cache = adapter_cache
        self._warmups = 0

    def warmup_min_requests(self, users: int | None) -> int:
        """A warm cache: every adapter has been loaded once before the load window."""
        return len(self.mix.adapters) if self.adapter_cache == "warm" else 0

    def adapter_for(self, phase: str, user: int | None) -> str | None:
        if phase == "warmup":
            if self.adapter_cache == "cold":
                return None
            i = self._warmups
            self._warmups += 1
            return self.mix.adapters[i % len(self.mix.adapters)].name
        return self.mix.draw(user)
