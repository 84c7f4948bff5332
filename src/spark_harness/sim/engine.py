"""The engine: continuous batching in real time over the KV cache.

One loop iteration is one engine step, as in vLLM or TensorRT-LLM:

1. finish the onboards whose copies arrived; their sequences start running;
2. schedule running sequences first (one decode token each, or the next prefill chunk),
   within ``max_num_batched_tokens``; a sequence that needs a G1 block when G1 is full
   preempts the most recently admitted one (recompute: its blocks are released and it
   goes back to the head of the queue);
3. admit waiting sequences in arrival order while sequence slots, token budget and KV
   allow: look the prompt up in G1/G2/G3, take the hits, start the onboards;
4. sleep the modeled step time (``timing``), then deliver one token to every sequence
   whose prompt is complete.

Steps follow a virtual timeline: a step starts when the previous one ended, so the
loop's own CPU time (delivering tokens, scheduling) and timer lateness are absorbed, as
a GPU computes the next step while the CPU handles the last one. Only when the loop
falls behind by more than a step (and more than ``CATCH_UP_S``, for scheduler hiccups
on a busy host) does the timeline restart at the current time; that overrun shows as
``sim_engine_step_actual_seconds`` exceeding ``sim_engine_step_modeled_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from spark_harness.sim.config import SimConfig
from spark_harness.sim.kvcache import KVCache, Onboard
from spark_harness.sim.lora import AdapterLoad, LoraCache
from spark_harness.sim.paging import Pager
from spark_harness.sim.pool import Block
from spark_harness.sim.timing import TimingModel

#: Lateness the timeline still catches up on, even when it exceeds the next step.
CATCH_UP_S = 0.010


class State(enum.Enum):
    WAITING = "waiting"
    LOADING = "loading"  # admitted, waiting for onboards (G2/G3 -> G1)
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False, slots=True)
class Sequence:
    """One request inside the engine, and the stream its tokens are delivered on."""

    rid: str
    prompt_len: int
    hashes: list[bytes]
    max_tokens: int
    stop_after: int  # tokens generated before finishing (max_tokens or a natural stop)
    adapter: str | None
    arrival: float
    state: State = State.WAITING
    blocks: list[Block] = field(default_factory=list)
    registered: int = 0  # leading prompt blocks already published for reuse
    computed: int = 0  # tokens whose KV exists
    generated: int = 0
    reserved: int = 0  # blocks promised but not yet allocated (reserve allocation)
    waits: list[Onboard] = field(default_factory=list)
    onboard: Onboard | None = None
    lora_load: AdapterLoad | None = None
    aborted: bool = False
    error: str | None = None
    finish_reason: str | None = None
    # what the response reports
    cached_tokens: int | None = None
    admitted_at: float | None = None
    first_token_at: float | None = None
    g2_blocks: int = 0
    g3_blocks: int = 0
    g2_seconds: float = 0.0
    g3_seconds: float = 0.0
    lora_seconds: float = 0.0
    preemptions: int = 0
    _waiter: asyncio.Future[None] | None = None

    @property
    def total(self) -> int:
        return self.prompt_len + self.generated

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    def notify(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._waiter = None

    async def changed(self) -> None:
        """Wait until new tokens arrive or the sequence ends."""
        if self.done:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter


@dataclass
class EngineStats:
    steps: int = 0
    step_modeled_s: float = 0.0
    step_actual_s: float = 0.0
    preemptions: int = 0
    rejected: int = 0
    finished: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0


Observer = Callable[[str, float], None]


class Engine:
    """Continuous-batching scheduler and step loop (see the module docstring)."""

    def __init__(
        self,
        cfg: SimConfig,
        kv: KVCache,
        timing: TimingModel,
        lora: LoraCache | None,
        pager: Pager | None = None,
    ) -> None:
        self.cfg = cfg
        self.kv = kv
        self.timing = timing
        self.lora = lora
        self.pager = pager  # mode paging: G1 beyond memory pages to a swap file
        kv.on_ready = self.wake
        if lora is not None:
            lora.on_ready = self.wake
        self.waiting: deque[Sequence] = deque()
        self.loading: list[Sequence] = []
        self.running: list[Sequence] = []
        self.stats = EngineStats()
        self.observe: Observer = lambda name, value: None
        self._wake_event = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ API side
    def kv_demand(self, seq: Sequence) -> int:
        """G1 blocks a sequence needs to be admitted (without counting prefix hits)."""
        if self.cfg.kv_allocation == "reserve":
            return self.cfg.blocks_for(seq.prompt_len + seq.max_tokens)
        return self.cfg.blocks_for(seq.prompt_len)

    def has_room(self, seq: Sequence) -> bool:
        """Whether G1 can take ``seq`` after everything already waiting (for rejection)."""
        queued = sum(self.kv_demand(s) for s in self.waiting if not s.aborted)
        return queued + self.kv_demand(seq) <= self.kv.pool.available()

    def submit(self, seq: Sequence) -> None:
        self.waiting.append(seq)
        self.wake()

    def abort(self, seq: Sequence) -> None:
        """The client went away: free the sequence at the next step."""
        if not seq.done:
            seq.aborted = True
            self.wake()

    def wake(self) -> None:
        self._wake_event.set()

    # ------------------------------------------------------------------ loop
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-engine")

    async def close(self) -> None:
        """Stop stepping and end every sequence with an error."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()  # also mid-step: a 70B prefill step can last seconds
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for seq in [*self.waiting, *self.loading, *self.running]:
            seq.state = State.DONE
            seq.error = "the server is shutting down"
            seq.notify()
        self.waiting.clear()
        self.loading.clear()
        self.running.clear()

    async def _run(self) -> None:
        clock = time.monotonic
        timeline: float | None = None  # virtual end of the previous step
        woke: float | None = None  # when the previous step's tokens were delivered
        while not self._closing:
            self._wake_event.clear()
            now = clock()
            batch = self._schedule(now)
            if not batch:
                timeline = woke = None
                await self._idle(now)
                if self._burst_starting():
                    # the wait counts from the burst's first arrival, and the first step
                    # starts on the timeline at its end: the wake-up's and the timer's
                    # lateness are absorbed as every later step's are
                    first = min(seq.arrival for seq in self.waiting)
                    timeline = woke = first + self.cfg.idle_batch_wait_ms / 1e3
                    await asyncio.sleep(max(0.0, timeline - clock()))
                continue
            if self.pager is not None:
                # the step cannot start before its KV is in memory: page faults are
                # real I/O, and their time passes before the modeled step
                await self.pager.touch(b.index for seq, _ in batch for b in seq.blocks)
                now = clock()
            prefill_s, decode_ctx = self._costs(batch)
            step = self.timing.step_s(len(batch), prefill_s, decode_ctx)
            continuous = timeline is not None and now - timeline < max(step, CATCH_UP_S)
            start = timeline if continuous and timeline is not None else now
            origin = woke if continuous and woke is not None else now
            timeline = start + step
            delay = timeline - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            woke = clock()
            self.stats.steps += 1
            self.stats.step_modeled_s += step
            self.stats.step_actual_s += woke - origin
            self.observe("step_lag", woke - timeline)
            self._deliver(batch, woke)

    async def _idle(self, now: float) -> None:
        """Wait for an arrival, an I/O completion or the link's next transfer end."""
        nxt = self.kv.next_event()
        timeout = None if nxt is None else max(0.0, nxt - now)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake_event.wait(), timeout)

    def _burst_starting(self) -> bool:
        """Whether an idle engine was woken by arrivals it should give ``idle_batch_wait_ms``
        to gather: a closed loop's users, answered in one step, come back within a fraction
        of a millisecond of each other, and which of them the first step takes would
        otherwise decide a collision pattern that lasts the whole run."""
        return (
            self.cfg.idle_batch_wait_ms > 0
            and bool(self.waiting)
            and not self.running
            and not self.loading
            and len(self.waiting) < self.cfg.max_num_seqs
        )

    def _costs(self, batch: list[tuple[Sequence, int]]) -> tuple[float, int]:
        prefill_s = 0.0
        decode_ctx = 0
        for seq, n in batch:
            if n == 1 and seq.computed >= seq.prompt_len:
                decode_ctx += seq.computed + 1
            else:
                prefill_s += self.timing.prefill_s(n, seq.computed)
        return prefill_s, decode_ctx

    # ------------------------------------------------------------------ scheduling
    def _schedule(self, now: float) -> list[tuple[Sequence, int]]:
        self.kv.poll(now)
        self._drop_aborted()
        self._promote_loaded(now)
        budget = self.cfg.max_num_batched_tokens
        batch: list[tuple[Sequence, int]] = []
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            n = min(seq.total - seq.computed, budget)
            if not self._grow(seq, n, now):
                break  # seq preempted itself: it was the last one
            batch.append((seq, n))
            budget -= n
            i += 1
        if i == len(self.running):
            budget = self._admit(now, budget, batch)
        return batch

    def _drop_aborted(self) -> None:
        if any(s.aborted for s in self.running):
            for seq in self.running:
                if seq.aborted:
                    self._end(seq)
            self.running = [s for s in self.running if not s.done]
        if any(s.aborted for s in self.waiting):
            for seq in self.waiting:
                if seq.aborted:
                    self._end(seq)
            self.waiting = deque(s for s in self.waiting if not s.done)

    def _promote_loaded(self, now: float) -> None:
        if not self.loading:
            return
        still: list[Sequence] = []
        for seq in self.loading:
            if not all(ob.finished for ob in seq.waits):
                still.append(seq)
                continue
            seq.waits = []
            if seq.onboard is not None:
                seq.g2_seconds = seq.onboard.g2_seconds
                seq.g3_seconds = seq.onboard.g3_seconds
                seq.onboard = None
            if seq.aborted:
                self._end(seq)
                continue
            seq.state = State.RUNNING
            self.running.append(seq)
        self.loading = still

    def _grow(self, seq: Sequence, n: int, now: float) -> bool:
        """Give ``seq`` the G1 blocks for ``n`` more tokens, preempting from the tail."""
        need = self.cfg.blocks_for(seq.computed + n) - len(seq.blocks)
        if need <= 0:
            return True
        from_reserve = min(need, seq.reserved)
        seq.reserved -= from_reserve
        self.kv.pool.reserved -= from_reserve
        while self.kv.pool.available() < need:
            victim = self.running[-1]
            self._preempt(victim)
            if victim is seq:
                return False
        seq.blocks.extend(self.kv.allocate(need, now))
        return True

    def _preempt(self, seq: Sequence) -> None:
        """Recompute preemption: free everything, back to the head of the queue."""
        self.running.remove(seq)
        self._free(seq)
        seq.computed = 0
        seq.registered = 0
        seq.state = State.WAITING
        seq.preemptions += 1
        self.stats.preemptions += 1
        self.waiting.appendleft(seq)

    def _admit(self, now: float, budget: int, batch: list[tuple[Sequence, int]]) -> int:
        kept: list[Sequence] = []
        while self.waiting:
            if budget <= 0 or len(self.running) + len(self.loading) >= self.cfg.max_num_seqs:
                break
            seq = self.waiting.popleft()
            if seq.adapter is not None and not self._adapter_ready(seq):
                if seq.done:  # its adapter failed to load
                    continue
                kept.append(seq)  # others may go ahead while its adapter loads
                continue
            admitted = self._try_admit(seq, now, budget, batch)
            if admitted is None:
                self.waiting.appendleft(seq)  # KV is full: first come, first served
                break
            budget -= admitted
        self.waiting.extendleft(reversed(kept))
        return budget

    def _adapter_ready(self, seq: Sequence) -> bool:
        """Whether the sequence's adapter is resident; starts or joins its load if not."""
        assert self.lora is not None and seq.adapter is not None
        waited = seq.lora_load
        if waited is not None and waited.done:
            seq.lora_load = None
            if waited.error is not None:
                self._end(seq, error=waited.error)
                return False
            seq.lora_seconds += waited.seconds
        load = self.lora.acquire(seq.adapter)
        seq.lora_load = load
        return load is None

    def _try_admit(
        self, seq: Sequence, now: float, budget: int, batch: list[tuple[Sequence, int]]
    ) -> int | None:
        """Admit ``seq`` if G1 has room; return the tokens it takes from this step."""
        bt = self.cfg.block_tokens
        limit = (seq.total - 1) // bt  # at least one token must be computed
        lk = self.kv.lookup(seq.hashes[:limit])
        matched = lk.blocks * bt
        chunk = min(seq.total - matched, budget)
        now_blocks = self.cfg.blocks_for(matched + chunk) - len(lk.g1)
        if self.cfg.kv_allocation == "reserve":
            promised = self.cfg.blocks_for(seq.prompt_len + seq.max_tokens) - len(lk.g1)
        else:
            promised = now_blocks
        if promised > self.kv.pool.available() - self.kv.pool.evictable_count(lk.g1):
            return None
        self.kv.claim(lk, seq.total)
        new_blocks = self.kv.allocate(now_blocks, now)
        seq.reserved = promised - now_blocks
        self.kv.pool.reserved += seq.reserved
        seq.blocks = lk.g1 + new_blocks
        seq.computed = matched
        seq.registered = lk.blocks
        if seq.admitted_at is None:
            seq.admitted_at = now
            seq.cached_tokens = matched
            self.stats.prompt_tokens += seq.prompt_len
        waits = {id(b.pending): b.pending for b in lk.g1 if isinstance(b.pending, Onboard)}
        if lk.lower:
            ob = self.kv.begin_onboard(lk, new_blocks[: len(lk.lower)], now)
            seq.onboard = ob
            seq.g2_blocks += ob.from_host
            seq.g3_blocks += len(ob.g3)
            waits[id(ob)] = ob
        if waits:
            seq.state = State.LOADING
            seq.waits = list(waits.values())
            self.loading.append(seq)
            return 0
        seq.state = State.RUNNING
        self.running.append(seq)
        batch.append((seq, chunk))
        return chunk

    # ------------------------------------------------------------------ completion
    def _deliver(self, batch: list[tuple[Sequence, int]], now: float) -> None:
        bt = self.cfg.block_tokens
        ended = False
        for seq, n in batch:
            if seq.state is not State.RUNNING or seq.aborted:
                continue
            seq.computed += n
            full = min(len(seq.hashes), seq.computed // bt)
            while seq.registered < full:
                self.kv.register(seq.blocks[seq.registered], seq.hashes[seq.registered])
                seq.registered += 1
            if seq.computed < seq.total:
                continue
            seq.generated += 1
            self.stats.generated_tokens += 1
            if seq.first_token_at is None:
                seq.first_token_at = now
                self.observe("ttft", now - seq.arrival)
            if seq.generated >= seq.stop_after:
                reason = "length" if seq.generated >= seq.max_tokens else "stop"
                self._end(seq, reason=reason)
                ended = True
            else:
                seq.notify()
        if ended:
            self.running = [s for s in self.running if not s.done]

    def _free(self, seq: Sequence) -> None:
        self.kv.release(seq.blocks)
        if self.pager is not None:  # freed memory is dropped, never paged out
            self.pager.discard(b.index for b in seq.blocks if b.refs == 0 and b.hash is None)
        seq.blocks = []
        self.kv.pool.reserved -= seq.reserved
        seq.reserved = 0

    def _end(self, seq: Sequence, reason: str | None = None, error: str | None = None) -> None:
        """Finish a sequence (normally, aborted, or with an error) and wake its stream."""
        if seq.done:
            return
        if seq.state is State.LOADING and not all(ob.finished for ob in seq.waits):
            # blocks still being filled are released once their copies land
            seq.aborted = True
            seq.error = error
            return
        self._free(seq)
        seq.state = State.DONE
        seq.finish_reason = reason
        if error is not None:
            seq.error = error
        if reason is not None:
            self.stats.finished += 1
        seq.notify()
