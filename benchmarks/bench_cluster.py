"""What running a plan through the SLURM profile costs, against the local run.

    python benchmarks/bench_cluster.py [--points N] [--requests R]

Runs the stand-in plan of tests/cluster/toy (the workflow's service pattern, N points
with planted delays) twice in this session: locally (`--cores 1`, the default profile,
the baseline) and through the SLURM profile on the single-node test cluster
(tests/cluster/slurm-cluster.sh up). Reports both wall times, their ratio, and per
point job: queue wait, run time, and its share spent outside the measured processes.
The test cluster's status checks start after 1 s (the plugin's default is 40 s).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

# the tests' cluster helpers (and their stand-in plan) are imported from the repository
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster.slurm import (
    CLUSTER_ARGS,
    SlurmJob,
    cluster_is_up,
    node_cpus,
    profile_for_node,
    run_snakemake,
    submitted_job_ids,
)
from tests.conftest import REPO

TOY = REPO / "tests" / "cluster" / "toy"


def toy_plan(dest: Path, points: int, requests: int) -> Path:
    """The stand-in plan with ``points`` points: a control and treated points of +50 ms."""
    shutil.copytree(TOY, dest)
    names = [f"p{i}" for i in range(points)]
    config = {
        "points": {n: 50 * i for i, n in enumerate(names)},
        "hypotheses": {f"H{n}": {"treated": n, "control": names[0]} for n in names[1:]},
        "threshold_ms": 25,
        "requests": requests,
    }
    (dest / "config.yaml").write_text(yaml.safe_dump(config))
    return dest


def timed(cwd: Path, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    done = run_snakemake(cwd, *args, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"snakemake failed in {cwd}:\n{done.stdout[-4000:]}")
    return time.monotonic() - t0, done.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--requests", type=int, default=8)
    args = ap.parse_args()
    if not cluster_is_up():
        raise SystemExit("the SLURM test cluster is not up: tests/cluster/slurm-cluster.sh up")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        tmp_path = Path(tmp)
        local = toy_plan(tmp_path / "local", args.points, args.requests)
        default = str(REPO / "workflow" / "profiles" / "default")
        local_s, _ = timed(local, "--cores", "1", "--workflow-profile", default)

        cluster = toy_plan(tmp_path / "slurm", args.points, args.requests)
        profile = profile_for_node(tmp_path / "profile", node_cpus())
        slurm_s, log = timed(cluster, "--workflow-profile", str(profile), *CLUSTER_ARGS)

        waits, runs = [], []
        for job_id, what in submitted_job_ids(log).items():
            if what != "group":
                continue
            job = SlurmJob.show(job_id)
            submit, start, end = (
                datetime.fromisoformat(job[k]) for k in ("SubmitTime", "StartTime", "EndTime")
            )
            waits.append((start - submit).total_seconds())
            runs.append((end - start).total_seconds())
        verdicts_equal = all(
            (cluster / p.relative_to(local)).read_text() == p.read_text()
            for p in local.glob("results/summary/*/verdict.json")
        )
    result = {
        "points": args.points,
        "local_s": round(local_s, 1),
        "slurm_s": round(slurm_s, 1),
        "ratio_slurm_to_local": round(slurm_s / local_s, 2),
        "local_s_per_point": round(local_s / args.points, 1),
        "slurm_job_run_s_median": statistics.median(runs),
        "slurm_queue_wait_s_max": max(waits),
        "verdicts_equal": verdicts_equal,
    }
    print(json.dumps(result))
    return 0 if verdicts_equal else 1


if __name__ == "__main__":
    sys.exit(main())
