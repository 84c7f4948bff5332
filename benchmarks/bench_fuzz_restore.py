"""Benchmark: fuzzing ``spark-harness restore`` with generated archives (issue 16).

    python benchmarks/bench_fuzz_restore.py                 # 2,000 generated archives
    python benchmarks/bench_fuzz_restore.py --cases 200     # a quick look

Hypothesis generates archives (``spark_harness_testkit.archives``): links of every
kind, the PATH_MAX symlink chain that gets past tarfile's ``data`` filter on Python
3.11.7, hostile names (``..``, absolute, ``.git``, control characters), every member
type, malformed or hostile manifests. Each is restored with ``--force`` into a fresh
checkout beside a file to protect. Goal: nothing created or changed outside the
checkout, 0 exceptions other than ``ArchiveError`` (0 tracebacks).
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from spark_harness.archive import ArchiveError, restore
from spark_harness_testkit import archives as hostile


def snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    out = {}
    for p in sorted(root.rglob("*")):
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        out[str(p.relative_to(root))] = (p.lstat().st_mode, data)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=2000)
    args = p.parse_args()
    outcomes: collections.Counter[str] = collections.Counter()
    escapes: list[str] = []
    t0 = time.monotonic()

    @settings(
        max_examples=args.cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(members=hostile.members())
    def fuzz(members: list[hostile.Member]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            case = Path(tmp)
            (case / "checkout").mkdir()
            (case / "outside").write_text("keep")
            archive = hostile.write(case / "a.tar.gz", members)
            before = snapshot(case)
            try:
                restore(archive, case / "checkout", force=True)
                outcomes["restored"] += 1
            except ArchiveError:
                outcomes["refused"] += 1
            except Exception as e:  # a traceback for the user: counted, shown
                outcomes[f"traceback {type(e).__name__}"] += 1
            changed = {k for k, v in snapshot(case).items() if before.get(k) != v}
            outside = sorted(k for k in changed if not k.startswith("checkout/"))
            if outside:
                escapes.append(f"{outside[:3]} from {[m.name[:60] for m in members][:6]}")

    fuzz()
    tracebacks = sum(v for k, v in outcomes.items() if k.startswith("traceback"))
    report = {
        "archives": sum(outcomes.values()),
        "wall_s": round(time.monotonic() - t0, 1),
        "outcomes": dict(outcomes),
        "tracebacks": tracebacks,
        "written_outside": len(escapes),
        "examples": escapes[:5],
    }
    print(json.dumps(report, indent=2))
    return 0 if not tracebacks and not escapes else 1


if __name__ == "__main__":
    sys.exit(main())
