"""The builtin background I/O generator: fio's QoS profiles where fio is not installed.

``python -m spark_harness.telemetry.iogen --dir D --out JSON --profile '{...}' --parent PID``
keeps ``profile.threads`` threads doing random O_DIRECT reads and writes on the files
:meth:`spark_harness.telemetry.qos.Perturbation.prepare` laid out in ``D``, prints
``ready`` once they run, and on SIGINT/SIGTERM writes a JSON report with the same
headline numbers as fio's summary. Synchronous threads stand in for fio's queue depth
(``os.preadv`` releases the GIL). It dies with the process that started it.
"""

from __future__ import annotations

import argparse
import json
import mmap
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
from spark_harness.telemetry.procguard import die_with_parent
from spark_harness.telemetry.qos import Profile, builtin_files

MAX_KEPT_LATENCIES = 100_000  # per thread and direction, for the p99


class Worker(threading.Thread):
    """Random block-sized O_DIRECT reads/writes on one file until told to stop."""

    def __init__(self, path: Path, profile: Profile, stop: threading.Event, seed: int) -> None:
        super().__init__(daemon=True)
        self.path, self.profile, self.stop = path, profile, stop
        self.rng = random.Random(seed)
        self.lat: dict[str, list[float]] = {"read": [], "write": []}
        self.count = {"read": 0, "write": 0}
        self.total_s = {"read": 0.0, "write": 0.0}
        self.error: str | None = None

    def run(self) -> None:
        bs = self.profile.block_kib * 1024
        blocks = self.profile.file_mib * 1024 * 1024 // bs
        buf = mmap.mmap(-1, bs)
        buf.write(os.urandom(bs))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_DIRECT)
        except OSError as e:
            self.error = f"{self.path}: {e}"
            return
        try:
            while not self.stop.is_set():
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


def run(directory: Path, profile: Profile, out: Path) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    files = builtin_files(directory, profile)
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"files not laid out (qos.Perturbation.prepare): {missing}")
    workers = [Worker(files[i % len(files)], profile, stop, seed=i) for i in range(profile.threads)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    print("ready", flush=True)
    while not stop.wait(0.2):
        if not any(w.is_alive() for w in workers):
            break
    stop.set()
    for w in workers:
        w.join(timeout=5.0)  # a read stuck on the device must not hold the report back
    report: dict[str, Any] = {
        "tool": "builtin",
        "profile": asdict(profile),
        "summary": summary(workers, time.monotonic() - t0, profile.block_kib),
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
    args = p.parse_args(argv)
    die_with_parent(args.parent)
    try:
        return run(args.dir, Profile(**json.loads(args.profile)), args.out)
    except OSError as e:
        print(f"iogen: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
