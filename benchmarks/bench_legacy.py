"""Benchmark: backfill, archives and UMA paging (the legacy v2.5 work, docs/LEGACY.md).

    python benchmarks/bench_legacy.py               # 100,000 legacy requests, 3 repeats
    python benchmarks/bench_legacy.py --requests 20000 --repeat 1

Each stage is timed against a baseline measured in the same process:

- ``import``: ``backfill.convert`` of one legacy run (``--requests`` requests, a sample
  every 0.5 s) against ``json.loads`` of the same ``metrics.jsonl`` lines, the floor of
  any reader of that format;
- ``archive``: ``archive.create`` of the imported run plus its ingested tables against
  ``tarfile`` gzip of the same files (the price of the manifest's hashes and metadata);
  ``restore`` (unpack, check every hash, stamp) against a plain ``extractall``;
- ``paging``: pages per second through ``sim.paging.Pager`` on a loop of blocks larger
  than memory (every block faults: one page-out and one page-in per page) against
  one ``pwrite`` and one ``pread`` of a 4 KiB page per fault on the same file, with the
  same ``O_DIRECT`` mode, all in one thread (the price of the bookkeeping and checks).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

T0 = 1_750_000_000.0


def legacy_run(d: Path, n: int) -> None:
    """A legacy run directory with ``n`` requests (20 per second) and 2 samples/s."""
    d.mkdir(parents=True)
    (d / "config.yaml").write_text("label: bench\nconcurrency: 8\nstack: A\n")
    with open(d / "metrics.jsonl", "w") as fh:
        for i in range(n):
            row = {
                "ts": T0 + i * 0.05,
                "req_id": f"r{i}",
                "rc": 200,
                "lat_ttft_ms": 80.0 + i % 17,
                "lat_e2e_ms": 400.0 + i % 31,
                "prompt_tokens": 256,
                "completion_tokens": 16,
            }
            fh.write(json.dumps(row) + "\n")
    with open(d / "sysmon.jsonl", "w") as fh:
        for k in range(int(n * 0.05 / 0.5) + 2):
            s = {
                "ts": T0 + k * 0.5,
                "cpu_iowait": 1.0,
                "mem_avail_kb": 10**8,
                "disk": {"nvme0n1": {"r_s": 100.0, "rkB_s": 4000.0, "r_await": 0.2}},
            }
            fh.write(json.dumps(s) + "\n")


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def line(stage: str, t: float, base: float, unit: str = "") -> None:
    print(f"{stage:<28} {t * 1e3:10.1f} ms   {t / base:6.2f} x baseline {unit}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pages", type=int, default=20_000, help="pages paged in per paging run")
    args = ap.parse_args()

    from spark_harness.archive import create, restore
    from spark_harness.backfill import convert
    from spark_harness.ingest import ingest
    from spark_harness.sim.paging import PAGE_BYTES, Pager

    with tempfile.TemporaryDirectory(dir=".") as tmp:
        work = Path(tmp)
        src = work / "legacy"
        legacy_run(src, args.requests)
        metrics = (src / "metrics.jsonl").read_text().splitlines()
        base = best(lambda: [json.loads(x) for x in metrics], args.repeat)
        res = work / "results"
        t_import = best(lambda: convert(src, res, "H0", force=True), args.repeat)
        print(f"{args.requests:,} legacy requests")
        line("baseline: json.loads", base, base)
        line("import (backfill.convert)", t_import, base)

        done = convert(src, res, "H0", force=True)
        ingest([done.dest], res / "ingest" / "H0" / "A")
        files = [p for p in res.rglob("*") if p.is_file()]
        plain = work / "plain.tar.gz"

        def tar_plain() -> None:
            with tarfile.open(plain, "w:gz") as tar:
                for p in files:
                    tar.add(p, arcname=str(p.relative_to(work)))

        t_tar = best(tar_plain, args.repeat)
        arc = work / "a.tar.gz"
        t_arc = best(lambda: create(res, {"track": "v3"}, "v3", arc, "bench"), args.repeat)
        mib = sum(p.stat().st_size for p in files) / 2**20
        print(f"\narchive of {len(files)} files, {mib:.1f} MiB")
        line("baseline: tarfile gzip", t_tar, t_tar)
        line("archive.create", t_arc, t_tar)

        def untar() -> None:
            shutil.rmtree(work / "u", ignore_errors=True)
            with tarfile.open(plain) as tar:
                tar.extractall(work / "u", filter="data")

        def unpack() -> None:
            shutil.rmtree(work / "r", ignore_errors=True)
            restore(arc, work / "r")

        t_untar, t_restore = best(untar, args.repeat), best(unpack, args.repeat)
        line("baseline: extractall", t_untar, t_untar)
        line("restore (check + stamp)", t_restore, t_untar)

        blocks, resident = 64, 32
        pager = Pager(work / "swap" / "file", blocks, resident, PAGE_BYTES)
        loops = max(1, args.pages // blocks)
        pager.run(pager.plan(range(blocks)))  # every block written out once

        def page() -> None:
            for _ in range(loops):
                pager.run(pager.plan(range(blocks)))

        t_page = best(page, args.repeat)
        flags = os.O_RDWR | (os.O_DIRECT if pager.file.direct else 0)
        fd = os.open(work / "swap" / "file", flags)
        buf = mmap.mmap(-1, PAGE_BYTES)  # aligned, as O_DIRECT needs

        def raw_io() -> None:
            for _ in range(loops):
                for b in range(blocks):
                    os.pwritev(fd, [buf], b * PAGE_BYTES)
                    os.preadv(fd, [buf], ((b + resident) % blocks) * PAGE_BYTES)

        t_read = best(raw_io, args.repeat)
        os.close(fd)
        pager.close()
        pages = loops * blocks
        print(f"\npaging: {pages:,} page faults (each a page-out and a page-in)")
        mode = "O_DIRECT" if pager.file.direct else "buffered"
        line(f"baseline: {mode} write+read", t_read, t_read, f"({pages / t_read:,.0f} pairs/s)")
        line("Pager page faults", t_page, t_read, f"({pages / t_page:,.0f} faults/s)")


if __name__ == "__main__":
    main()
