"""The SLURM profile on a real SLURM cluster, with stand-in points (toy/).

The stand-in plan has the workflow's service pattern and rule names, a planted effect
(one point's server answers 150 ms later) and a null pair (two equal points). Run
locally and through the SLURM profile, it must reach the same verdicts, and on SLURM
each point must be one exclusive job holding its server, sidecar and load generator.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.cluster.slurm import (
    CLUSTER_ARGS,
    SlurmJob,
    profile_for_node,
    run_snakemake,
    submitted_job_ids,
)
from tests.conftest import REPO
from tests.workflow.smk import wait_no_orphans

pytestmark = pytest.mark.slurm

TOY = Path(__file__).with_name("toy")
DEFAULT_PROFILE = REPO / "workflow" / "profiles" / "default"
POINTS = ("control", "twin", "slow")


def toy_copy(dest: Path) -> Path:
    shutil.copytree(TOY, dest)
    return dest


@pytest.fixture(scope="module")
def runs(slurm_cluster: int, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The stand-in plan run locally and through the SLURM profile, once."""
    tmp = tmp_path_factory.mktemp("toy")
    local = toy_copy(tmp / "local")
    done = run_snakemake(local, "--cores", "1", "--workflow-profile", str(DEFAULT_PROFILE))
    assert done.returncode == 0, done.stdout[-4000:]
    cluster = toy_copy(tmp / "slurm")
    profile = profile_for_node(tmp / "profile", slurm_cluster)
    t0 = time.monotonic()
    done = run_snakemake(cluster, "--workflow-profile", str(profile), *CLUSTER_ARGS)
    assert done.returncode == 0, done.stdout[-6000:]
    return {
        "local": local,
        "cluster": cluster,
        "log": done.stdout,
        "cpus": slurm_cluster,
        "seconds": time.monotonic() - t0,
    }


def test_verdicts_equal_the_local_run_and_find_only_the_planted_effect(runs):
    for hyp, expected in (("Heffect", "supported"), ("Hnull", "not supported")):
        rel = Path("results/summary") / hyp / "verdict.json"
        cluster = (runs["cluster"] / rel).read_text()
        assert cluster == (runs["local"] / rel).read_text(), hyp
        assert f'"verdict": "{expected}"' in cluster


def test_each_point_is_one_exclusive_job_holding_all_three_processes(runs):
    jobs = submitted_job_ids(runs["log"])
    groups = {j for j, what in jobs.items() if what == "group"}
    seen = set()
    for point in POINTS:
        place = json.loads((runs["cluster"] / f"results/raw/{point}/run.json").read_text())
        place = place["placement"]
        where = {(p["host"], p["slurm_job_id"], p["slurm_step_id"]) for p in place.values()}
        assert len(where) == 1, f"{point}: server, sidecar and loadgen apart: {where}"
        ((_host, job_id, _step),) = where
        assert job_id in groups
        seen.add(job_id)
        job = SlurmJob.show(job_id)
        assert job["OverSubscribe"] == "NO", "point job not exclusive"
        assert int(job["NumCPUs"]) == runs["cpus"]
        # the step running the group is not confined to loadgen's single thread
        assert all(len(p["cpus"]) == runs["cpus"] for p in place.values()), place
    assert seen == groups, "a point job without a point, or two points in one job"


def _interval(job: SlurmJob) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(job["StartTime"]), datetime.fromisoformat(job["EndTime"])


def test_no_job_shared_the_node_with_a_measurement(runs):
    jobs = {j: SlurmJob.show(j) for j in submitted_job_ids(runs["log"])}
    points = [j for j, what in submitted_job_ids(runs["log"]).items() if what == "group"]
    for p in points:
        p_start, p_end = _interval(jobs[p])
        for other, job in jobs.items():
            if other == p:
                continue
            start, end = _interval(job)
            assert not (start < p_end and p_start < end), f"job {other} overlapped point {p}"


def test_analysis_jobs_are_small(runs):
    summaries = [j for j, what in submitted_job_ids(runs["log"]).items() if what == "summary"]
    assert len(summaries) == 2
    for j in summaries:
        job = SlurmJob.show(j)
        assert int(job["NumCPUs"]) == 1
        assert job.tres["mem"] == "4000M"
        assert job["OverSubscribe"] != "NO"


def test_no_process_outlives_the_run(runs):
    assert wait_no_orphans(runs["cluster"]) == []


def test_ctrl_c_cancels_the_jobs_and_leaves_no_process(slurm_cluster, tmp_path):
    root = toy_copy(tmp_path / "toy")
    profile = profile_for_node(tmp_path / "profile", slurm_cluster)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--workflow-profile", str(profile), *CLUSTER_ARGS],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not list(root.glob("results/services/*/sidecar.json")):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "no point started within 180 s"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    run_id = re.search(r"SLURM run ID: (\S+)", out).group(1)
    deadline = time.monotonic() + 60
    while True:
        left = subprocess.run(
            ["squeue", "-h", "--name", run_id, "-t", "PD,R,CG", "-o", "%i %T"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        left = [line for line in left if line.strip()]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert left == [], f"SLURM jobs left after Ctrl-C: {left}"
    assert wait_no_orphans(root, timeout=30) == []
