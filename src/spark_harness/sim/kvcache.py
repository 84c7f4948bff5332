"""The KV cache across tiers: prefix lookup, onboarding, and the offload cascade.

G1 is the paged cache (``pool``). In ``tiered`` mode a block evicted from G1 is
offloaded to G2 (host memory: a modeled copy over the shared link) and a block evicted
from G2 goes on to G3 (disk: a real write into the G3 file) unless the disk offload
filter holds it back (KVBM's default: only blocks that were reused reach disk). A
block evicted from the last tier is dropped. Tiers are inclusive after an onboard: the
lower copy stays, so a block that leaves G1 again costs no second offload.

A lookup walks the prompt's block hashes: first G1, then, block by block, G2 or G3.
Found blocks are *onboarded* into freshly allocated G1 blocks: the G2 part takes its
modeled time on the link, the G3 part is read from the file and takes the measured
time. The counters mirror KVBM's (``kvbm_offload_blocks_d2h`` = G1->G2,
``..._h2d`` = G2->G3, ``..._d2d`` = G1->G3, ``kvbm_onboard_blocks_h2d`` = G2->G1,
``..._d2d`` = G3->G1).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from spark_harness.sim.config import SimConfig
from spark_harness.sim.diskio import BlockFile
from spark_harness.sim.eviction import make_policy
from spark_harness.sim.link import LinkTransfer, SharedLink
from spark_harness.sim.pool import Block, BlockPool
from spark_harness.sim.resident import ResidentMemory
from spark_harness.sim.tiers import DiskTier, Entry, Tier

log = logging.getLogger(__name__)

#: Blocks the sliding hit-rate window covers (KVBM reports hit rates over a window).
HIT_WINDOW_BLOCKS = 4096


@dataclass
class KVStats:
    """Cumulative counters (blocks unless named otherwise)."""

    prefix_queries_tokens: int = 0
    prefix_hits_tokens: int = 0
    offload_g1_g2: int = 0
    offload_g2_g3: int = 0
    offload_g1_g3: int = 0
    onboard_g2: int = 0
    onboard_g3: int = 0
    matched_tokens: int = 0
    dropped: int = 0
    filtered: int = 0
    g3_read_bytes: int = 0
    g3_write_bytes: int = 0
    g3_io_errors: int = 0


class HitWindow:
    """Shares of recent beyond-G1 block lookups served by G2 and by G3."""

    def __init__(self, size: int = HIT_WINDOW_BLOCKS) -> None:
        self._window: deque[int] = deque(maxlen=size)  # 0 miss, 2 G2, 3 G3

    def record(self, g2: int, g3: int, looked_up: int) -> None:
        self._window.extend([2] * g2 + [3] * g3 + [0] * (looked_up - g2 - g3))

    def rates(self) -> tuple[float, float]:
        n = len(self._window)
        if n == 0:
            return 0.0, 0.0
        return self._window.count(2) / n, self._window.count(3) / n


@dataclass(eq=False)
class Lookup:
    """Where a prompt's leading blocks are: G1 blocks, then G2/G3 blocks, in order."""

    g1: list[Block]
    lower: list[tuple[bytes, Tier]]  # blocks after the G1 ones, each in G2 or G3
    beyond_g1: int  # full prompt blocks not in G1

    @property
    def blocks(self) -> int:
        return len(self.g1) + len(self.lower)

    @property
    def g2(self) -> list[bytes]:
        return [h for h, tier in self.lower if tier.name == "g2"]

    @property
    def g3(self) -> list[bytes]:
        return [h for h, tier in self.lower if tier.name == "g3"]


@dataclass(eq=False)
class Onboard:
    """Copies into G1 for one admission; done when the G2 and G3 parts both are."""

    blocks: list[Block]
    g2: list[bytes]
    g3: list[bytes]  # read from the G3 file
    started: float
    # G3 blocks whose write is still in flight: copied from the host buffer the write
    # reads from, as G2 blocks are (nothing to read back from a disk that lacks them yet)
    buffered: list[bytes] = field(default_factory=list)
    link: LinkTransfer | None = None
    g3_task: asyncio.Task[None] | None = None
    g2_seconds: float = 0.0
    g3_seconds: float = 0.0
    finished: bool = False

    @property
    def from_host(self) -> int:
        """Blocks copied from host memory: G2's and the G3 blocks still being written."""
        return len(self.g2) + len(self.buffered)


class KVCache:
    """G1 plus, in tiered mode, G2 and G3, with counters and the onboard machinery."""

    def __init__(self, cfg: SimConfig, g3_dir: Path | None) -> None:
        self.cfg = cfg
        memory = ResidentMemory(cfg.g1_blocks, cfg.block_bytes) if cfg.resident_kv else None
        self.pool = BlockPool(cfg.g1_blocks, make_policy(cfg.eviction), cfg.prefix_reuse, memory)
        self.g2 = Tier("g2", cfg.g2_blocks, cfg.eviction) if cfg.tiered and cfg.g2_blocks else None
        self.g3 = DiskTier(cfg.g3_blocks, cfg.eviction) if cfg.has_g3 else None
        self.link = SharedLink(cfg.hardware.host_link_gbps * 1e9)
        self.stats = KVStats()
        self.hits = HitWindow()
        self.observe_fetch: Callable[[str, float], None] = lambda tier, seconds: None
        self.on_ready: Callable[[], None] = lambda: None  # a G3 read finished
        self._onboards: list[Onboard] = []
        self._unwritten: list[tuple[bytes, Entry]] = []  # offloaded to G3, write not issued
        self.file: BlockFile | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._writer: ThreadPoolExecutor | None = None
        if self.g3 is not None:
            assert g3_dir is not None
            name = f"g3-{id(self):x}.blocks"
            floor = cfg.read_floor_s(cfg.block_bytes)
            self.file = BlockFile(
                g3_dir / name,
                cfg.block_bytes,
                cfg.g3_blocks,
                cfg.seed,
                floor,
                threads=cfg.g3_queue_depth + 1,  # the readers and the writer
            )
            self._readers = ThreadPoolExecutor(cfg.g3_queue_depth, thread_name_prefix="g3-read")
            # one writer keeps writes to a reused slot in order
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="g3-write")

    # ---------------------------------------------------------------- lookup
    def lookup(self, hashes: list[bytes]) -> Lookup:
        """Where the leading blocks of ``hashes`` are (nothing without prefix reuse)."""
        if not self.pool.reuse:
            return Lookup([], [], 0)
        g1 = self.pool.match(hashes)
        lower: list[tuple[bytes, Tier]] = []
        for h in hashes[len(g1) :]:
            if self.g2 is not None and h in self.g2:
                lower.append((h, self.g2))
            elif self.g3 is not None and h in self.g3:
                lower.append((h, self.g3))
            else:
                break
        return Lookup(g1, lower, len(hashes) - len(g1))

    def claim(self, lk: Lookup, prompt_tokens: int) -> None:
        """Take the blocks of an admitted lookup: pin them and count the queries/hits."""
        self.pool.pin(lk.g1, hit=True)
        for h, tier in lk.lower:
            tier.hit(h)
            tier.pin(h)
        bt = self.cfg.block_tokens
        self.stats.prefix_queries_tokens += prompt_tokens
        self.stats.prefix_hits_tokens += len(lk.g1) * bt
        if self.cfg.tiered:
            self.hits.record(len(lk.g2), len(lk.g3), lk.beyond_g1)

    # ---------------------------------------------------------------- G1 blocks
    def allocate(self, n: int, now: float) -> list[Block]:
        """``n`` new G1 blocks; what they displace is offloaded down the tiers."""
        blocks, evicted = self.pool.allocate(n)
        for victim in evicted:
            self._offload_from_g1(victim, now)
        if self._unwritten:
            self._flush_writes()
        return blocks

    def register(self, block: Block, block_hash: bytes) -> None:
        self.pool.register(block, block_hash)

    def release(self, blocks: list[Block]) -> None:
        self.pool.release(blocks)

    # ---------------------------------------------------------------- offload
    def _offload_from_g1(self, victim: Block, now: float) -> None:
        assert victim.hash is not None
        h = victim.hash
        if self.g2 is not None:
            if h in self.g2:  # an inclusive copy is already there
                self.g2.refresh(h)
                return
            entry, evicted = self.g2.insert(h, victim.hits)
            if entry is None:
                self.stats.dropped += 1
                return
            self.stats.offload_g1_g2 += 1
            self.link.start(self.cfg.block_bytes_full_scale, now)
            for vh, ve in evicted:
                self._offload_to_g3(vh, ve.hits, from_g2=True)
        elif self.g3 is not None:
            self._offload_to_g3(h, victim.hits, from_g2=False)
        elif self.cfg.tiered:
            self.stats.dropped += 1

    def _offload_to_g3(self, h: bytes, hits: int, from_g2: bool) -> None:
        if self.g3 is None:
            self.stats.dropped += 1
            return
        if h in self.g3:
            self.g3.refresh(h)
            return
        if self.cfg.disk_offload_filter and hits < 1:
            self.stats.filtered += 1
            return
        entry, evicted = self.g3.insert(h, hits)
        self.stats.dropped += len(evicted)
        if entry is None:
            self.stats.dropped += 1
            return
        if from_g2:
            self.stats.offload_g2_g3 += 1
        else:
            self.stats.offload_g1_g3 += 1
        self._unwritten.append((h, entry))

    def _flush_writes(self) -> None:
        """Write the blocks offloaded to G3 by one allocation, as one job of the writer."""
        assert self.file is not None and self._writer is not None
        batch, self._unwritten = self._unwritten, []
        written = self._writer.submit(self.file.write_many, [(e.slot, h) for h, e in batch])
        for _, entry in batch:
            entry.written = written
        loop = asyncio.get_running_loop()
        written.add_done_callback(lambda f: loop.call_soon_threadsafe(self._on_written, batch, f))

    def _on_written(
        self, batch: list[tuple[bytes, Entry]], fut: Future[list[OSError | None]]
    ) -> None:
        if fut.cancelled():
            return
        assert self.g3 is not None
        for (h, entry), error in zip(batch, fut.result(), strict=True):
            if error is None:
                self.stats.g3_write_bytes += self.cfg.block_bytes
                continue
            self.stats.g3_io_errors += 1
            log.warning("G3 write failed: %s", error)
            if h in self.g3 and self.g3.get(h) is entry and entry.pins == 0:
                self.g3.remove(h)

    # ---------------------------------------------------------------- onboard
    def begin_onboard(self, lk: Lookup, blocks: list[Block], now: float) -> Onboard:
        """Start copying the G2/G3 blocks of ``lk`` into ``blocks`` (new G1 blocks).

        A G3 block whose write has not completed is copied from the host buffer that
        write reads from, over the link like a G2 block, and counted as onboarded from
        host memory: reading it back from the disk would first wait for the write, and
        a heavy perturbation then made every fetch wait behind the writer's backlog."""
        on_disk: list[bytes] = []
        buffered: list[bytes] = []
        for h in lk.g3:
            assert self.g3 is not None
            (on_disk if _written(self.g3.get(h)) else buffered).append(h)
        ob = Onboard(blocks=blocks, g2=lk.g2, g3=on_disk, started=now, buffered=buffered)
        for block, (h, tier) in zip(blocks, lk.lower, strict=True):
            self.pool.register(block, h, hits=tier.get(h).hits)
            block.pending = ob
        self.stats.onboard_g2 += ob.from_host
        self.stats.onboard_g3 += len(ob.g3)
        self.stats.matched_tokens += len(lk.lower) * self.cfg.block_tokens
        if ob.from_host:
            ob.link = self.link.start(ob.from_host * self.cfg.block_bytes_full_scale, now)
        if ob.g3:
            ob.g3_task = asyncio.get_running_loop().create_task(self._read_g3(ob))
        self._onboards.append(ob)
        return ob

    async def _read_g3(self, ob: Onboard) -> None:
        """Read the onboard's G3 blocks, ``g3_queue_depth`` at a time; time it all."""
        assert self.g3 is not None and self.file is not None
        loop = asyncio.get_running_loop()
        entries = [(self.g3.get(h), h) for h in ob.g3]  # written: begin_onboard checked
        t0 = time.perf_counter()
        depth = self.cfg.g3_queue_depth
        slots = [(e.slot, h) for e, h in entries]
        groups = [slots[i::depth] for i in range(min(depth, len(slots)))]
        results = await asyncio.gather(
            *(loop.run_in_executor(self._readers, self.file.read_many, g) for g in groups)
        )
        ob.g3_seconds = time.perf_counter() - t0
        errors = [e for group in results for e in group if e is not None]
        self.stats.g3_read_bytes += (len(entries) - len(errors)) * self.cfg.block_bytes
        if errors:
            # the blocks are treated as loaded (a real engine would recompute them);
            # failures are counted so a run that had any can be marked
            self.stats.g3_io_errors += len(errors)
            log.warning("%d G3 read(s) failed, first: %s", len(errors), errors[0])
        self.on_ready()

    def poll(self, now: float) -> None:
        """Advance the link to ``now`` and finish the onboards whose copies are done."""
        self.link.advance(now)
        if not self._onboards:
            return
        still: list[Onboard] = []
        for ob in self._onboards:
            link_done = ob.link is None or ob.link.done_at is not None
            g3_done = ob.g3_task is None or ob.g3_task.done()
            if link_done and g3_done:
                self._finish(ob)
            else:
                still.append(ob)
        self._onboards = still

    def _finish(self, ob: Onboard) -> None:
        for block in ob.blocks:
            block.pending = None
        for h in ob.g2:
            assert self.g2 is not None
            self.g2.unpin(h)
        for h in ob.g3 + ob.buffered:
            assert self.g3 is not None
            self.g3.unpin(h)
        if ob.link is not None:
            assert ob.link.done_at is not None
            ob.g2_seconds = ob.link.done_at - ob.started
            self.observe_fetch("g2", ob.g2_seconds)
        if ob.g3_task is not None:
            self.observe_fetch("g3", ob.g3_seconds)
        ob.finished = True

    def next_event(self) -> float | None:
        """When the link next completes a transfer (disk completions wake the engine)."""
        return self.link.next_completion()

    # ---------------------------------------------------------------- shutdown
    async def close(self) -> None:
        """Wait for in-flight I/O, then remove the G3 file."""
        for ob in self._onboards:
            if ob.g3_task is not None:
                ob.g3_task.cancel()
        loop = asyncio.get_running_loop()
        for pool in (self._readers, self._writer):
            if pool is not None:
                await loop.run_in_executor(
                    None, functools.partial(pool.shutdown, True, cancel_futures=True)
                )
        if self.file is not None:
            self.file.close(remove=True)
        if self.pool.memory is not None:
            self.pool.memory.close()


def _written(entry: Entry) -> bool:
    """Whether a G3 entry's block is on the disk (its write job completed)."""
    return entry.written is not None and entry.written.done()
