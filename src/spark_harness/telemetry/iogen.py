"""The builtin background I/O generator: fio's QoS profiles where fio is not installed.

``python -m spark_harness.telemetry.iogen --dir D --out JSON --profile '{...}' --parent PID``
keeps ``profile.threads`` threads doing random O_DIRECT reads and writes on the files
:meth:`spark_harness.telemetry.qos.Perturbation.prepare` laid out in ``D``, prints
``ready`` once they run, and on SIGINT/SIGTERM writes a JSON report with the same
headline numbers as fio's summary. Synchronous threads stand in for fio's queue depth
(``os.preadv`` releases the GIL), one per outstanding I/O. It runs at the lowest CPU
priority (the idle scheduling class, below fio's ``--nice=19``) and dies with the process
that started it. Its buffers lie in huge pages (:mod:`spark_harness.iobuf`), as a real
drive's PRP lists make any layout cost the same.

With ``--latency-target-ms`` it holds its mean read latency near the target instead of
keeping every I/O of the profile outstanding: every ``CONTROL_S`` it sets how many
threads issue I/O (at most the profile's), so the device is slowed by about the same
amount on a fast NVMe and on a slow cloud disk, where a fixed queue depth slows one by a
fraction and the other by a factor of fifty.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spark_harness.files import write_json
from spark_harness.iobuf import contiguous_buffers, contiguous_share
from spark_harness.telemetry.procguard import die_with_parent
from spark_harness.telemetry.qos import Profile, builtin_files

MAX_KEPT_LATENCIES = 100_000  # per thread and direction, for the p99
CONTROL_S = 0.1  # how often the depth follows a latency target
START_DEPTH = 8  # the depth a latency-targeted run starts at


def next_depth(depth: int, mean_read_s: float, target_s: float, most: int) -> int:
    """The depth that brings the mean read latency to the target. At a busy device the
    latency grows about in proportion to the I/Os queued, so the depth is scaled by
    target / mean, damped (square root) so that one noisy interval cannot swing it."""
    if mean_read_s <= 0:
        return most
    return max(1, min(most, round(depth * math.sqrt(target_s / mean_read_s))))


class Throttle:
    """How many workers issue I/O: all of them, or as many as hold a latency target.
    Worker ``i`` runs while ``i < active``; the others wait here without spinning."""

    def __init__(self, most: int, target_s: float | None) -> None:
        self.most, self.target_s = most, target_s
        self.active = most if target_s is None else min(most, START_DEPTH)
        self.trace: list[int] = []  # the depth after each control interval
        self._cond = threading.Condition()

    def admit(self, index: int, stop: threading.Event) -> None:
        if index < self.active:
            return
        with self._cond:
            self._cond.wait_for(lambda: stop.is_set() or index < self.active)

    def set(self, active: int) -> None:
        with self._cond:
            self.active = active
            self._cond.notify_all()

    def follow(self, mean_read_s: float) -> None:
        """One control step: the depth for the last interval's mean read latency."""
        if self.target_s is not None:
            self.set(next_depth(self.active, mean_read_s, self.target_s, self.most))
        self.trace.append(self.active)

    def report(self) -> dict[str, Any]:
        t = self.trace or [self.active]
        return {
            "latency_target_ms": None if self.target_s is None else self.target_s * 1e3,
            "depth_most": self.most,
            "depth_mean": sum(t) / len(t),
            "depth_min": min(t),
            "depth_max": max(t),
        }


class Worker(threading.Thread):
    """Random block-sized O_DIRECT reads/writes on one file until told to stop. ``seed``
    is the worker's number: its random seed and its place in the throttle; ``buffer``
    (one block) is what it reads into and writes from."""

    def __init__(
        self,
        path: Path,
        profile: Profile,
        stop: threading.Event,
        seed: int,
        buffer: memoryview,
        throttle: Throttle | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.path, self.profile, self.stop, self.buffer = path, profile, stop, buffer
        self.index, self.throttle = seed, throttle
        self.rng = random.Random(seed)
        self.lat: dict[str, list[float]] = {"read": [], "write": []}
        self.count = {"read": 0, "write": 0}
        self.total_s = {"read": 0.0, "write": 0.0}
        self.error: str | None = None

    def run(self) -> None:
        bs = self.profile.block_kib * 1024
        blocks = self.profile.file_mib * 1024 * 1024 // bs
        buf = self.buffer
        buf[:] = os.urandom(bs)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_DIRECT)
        except OSError as e:
            self.error = f"{self.path}: {e}"
            return
        try:
            while not self.stop.is_set():
                if self.throttle is not None:
                    self.throttle.admit(self.index, self.stop)
                    if self.stop.is_set():
                        break
                off = self.rng.randrange(blocks) * bs
                side = "read" if self.rng.randrange(100) < self.profile.read_pct else "write"
                t0 = time.perf_counter()
                if side == "read":
                    os.preadv(fd, [buf], off)
                else:
                    os.pwritev(fd, [buf], off)
                dt = time.perf_counter() - t0
                self.count[side] += 1
                self.total_s[side] += dt
                if len(self.lat[side]) < MAX_KEPT_LATENCIES:
                    self.lat[side].append(dt)
        except OSError as e:
            self.error = str(e)
        finally:
            os.close(fd)


def summary(workers: list[Worker], runtime_s: float, block_kib: int) -> dict[str, float]:
    """The numbers :func:`spark_harness.telemetry.qos.fio_summary` gives for fio."""
    out: dict[str, float] = {"runtime_s": runtime_s}
    for side in ("read", "write"):
        n = sum(w.count[side] for w in workers)
        lat = sorted(x for w in workers for x in w.lat[side])
        out[f"{side}_iops"] = n / runtime_s if runtime_s > 0 else 0.0
        out[f"{side}_mib_s"] = out[f"{side}_iops"] * block_kib / 1024
        out[f"{side}_lat_mean_us"] = sum(w.total_s[side] for w in workers) / n * 1e6 if n else 0.0
        out[f"{side}_lat_p99_us"] = lat[int(0.99 * (len(lat) - 1))] * 1e6 if lat else 0.0
    return out


def _reads(workers: list[Worker]) -> tuple[int, float]:
    """Reads completed so far and their summed latency (read unlocked: a worker may be
    one read ahead, which one control interval absorbs)."""
    return sum(w.count["read"] for w in workers), sum(w.total_s["read"] for w in workers)


def run(directory: Path, profile: Profile, out: Path, latency_target_ms: float | None) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    files = builtin_files(directory, profile)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"files not laid out (qos.Perturbation.prepare): {missing}")
    target_s = None if latency_target_ms is None else latency_target_ms / 1e3
    throttle = Throttle(profile.threads, target_s)
    # contiguous buffers, as fio's on a real drive: on a virtio disk without indirect
    # descriptors scattered ones fill the ring with a few requests (spark_harness.iobuf)
    buffers = contiguous_buffers(profile.threads, profile.block_kib * 1024)
    workers = [
        Worker(files[i % len(files)], profile, stop, i, buffers[i], throttle)
        for i in range(profile.threads)
    ]
    contiguous = contiguous_share(buffers)
    t0 = time.monotonic()
    for w in workers:
        w.start()
    print("ready", flush=True)
    last = _reads(workers)
    while not stop.wait(CONTROL_S):
        if not any(w.is_alive() for w in workers):
            break
        now = _reads(workers)
        if now[0] > last[0]:
            throttle.follow((now[1] - last[1]) / (now[0] - last[0]))
        last = now
    stop.set()
    throttle.set(throttle.most)  # wake the waiting workers so that they see the stop
    for w in workers:
        w.join(timeout=5.0)  # a read stuck on the device must not hold the report back
    report: dict[str, Any] = {
        "tool": "builtin",
        "profile": asdict(profile),
        "summary": summary(workers, time.monotonic() - t0, profile.block_kib),
        "depth": throttle.report(),
        "buffers_contiguous": contiguous,
        "errors": sorted({w.error for w in workers if w.error}),
    }
    write_json(out, report)
    return 1 if report["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spark_harness.telemetry.iogen")
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--profile", required=True, help="JSON of a qos.Profile")
    p.add_argument("--parent", type=int, required=True, help="exit when this process does")
    p.add_argument("--latency-target-ms", type=float, help="hold the mean read latency here")
    args = p.parse_args(argv)
    die_with_parent(args.parent)
    # perturb the device, not the server's and load generator's CPU: the idle class
    # runs only on a core nothing else wants (at nice 19 alone, Stack A's TTFT p99 rose
    # 3-9 % beside heavy on 2 cores, though A reads nothing from the device)
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    try:
        return run(args.dir, Profile(**json.loads(args.profile)), args.out, args.latency_target_ms)
    except OSError as e:
        print(f"iogen: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
