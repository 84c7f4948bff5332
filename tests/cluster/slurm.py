"""Helpers for the SLURM tests: the test cluster, the profile, Snakemake runs, job facts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.conftest import REPO

SCRIPT = Path(__file__).with_name("slurm-cluster.sh")
PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
#: The rules of one measured point: one Snakemake group, one SLURM job.
POINT_RULES = ("server_up", "telemetry_sidecar", "loadgen")
#: The test cluster has no accounting database (see slurm-cluster.sh): job states come
#: from squeue; and status checks start after 1 s instead of 40 s, to keep tests short.
CLUSTER_ARGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
)


def cluster_is_up() -> bool:
    """True when the test cluster's node accepts jobs."""
    if not shutil.which("sinfo"):
        return False
    done = subprocess.run(
        ["bash", str(SCRIPT), "status"], capture_output=True, text=True, timeout=30
    )
    return done.returncode == 0


def node_cpus() -> int:
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-n", "localhost", "-o", "%c"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return int(out.split()[0])


def profile_for_node(dest: Path, cpus: int) -> Path:
    """The SLURM profile with its measurement cores fitted to a node of ``cpus`` cores.

    The shipped profile budgets a DGX Spark's 20 cores over the point's three rules;
    only the server's share changes here, so the group asks for exactly ``cpus``.
    Everything else is the profile as shipped.
    """
    profile = yaml.safe_load(PROFILE.read_text())
    res = profile["set-resources"]
    others = sum(res[r]["cpus_per_task"] for r in POINT_RULES if r != "server_up")
    res["server_up"]["cpus_per_task"] = max(cpus - others, 0)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return dest


def run_snakemake(cwd: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Snakemake from this interpreter's environment, output captured (stdout + stderr)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env=env,
    )


def submitted_job_ids(log: str) -> dict[str, str]:
    """SLURM job id -> what it ran ("group" or the rule name), from a Snakemake log."""
    jobs = {}
    for m in re.finditer(r"has been submitted with SLURM jobid (\d+) \(log: ([^)]*)\)", log):
        kind = Path(m.group(2)).parts
        name = next((p for p in kind if p.startswith(("group_", "rule_"))), "?")
        jobs[m.group(1)] = "group" if name.startswith("group_") else name.removeprefix("rule_")
    return jobs


@dataclass
class SlurmJob:
    """What the controller remembers of a job (finished jobs: for MinJobAge seconds)."""

    fields: dict[str, str]

    @classmethod
    def show(cls, job_id: str) -> SlurmJob:
        out = subprocess.run(
            ["scontrol", "show", "job", "--oneliner", job_id],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        return cls(dict(re.findall(r"(\S+?)=(\S*)", out)))

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    @property
    def tres(self) -> dict[str, str]:
        return dict(kv.split("=", 1) for kv in self["TRES"].split(","))


@dataclass
class DryRunGroup:
    """One group job of a dry run: its rules and their wildcards."""

    rules: dict[str, dict[str, str]]


def dry_run_jobs(out: str) -> tuple[list[DryRunGroup], dict[str, int], set[str]]:
    """Group jobs, jobs per rule outside groups, and local rules of a dry run's output."""
    groups: list[DryRunGroup] = []
    single: dict[str, int] = {}
    local: set[str] = set()
    for block in re.split(r"\n(?=\[[^\]]+\])", out):
        rules = re.findall(r"^\s*(localrule|rule) (\w+):\n(.*?)(?=^\s*\[|\Z)", block, re.S | re.M)
        if "Group job" in block.split("\n", 1)[0]:
            groups.append(DryRunGroup({name: _wildcards(body) for _k, name, body in rules}))
            continue
        for kind, name, _body in rules:
            if kind == "localrule":
                local.add(name)
            else:
                single[name] = single.get(name, 0) + 1
    return groups, single, local


def _wildcards(body: str) -> dict[str, str]:
    m = re.search(r"wildcards: (.*)", body)
    return dict(kv.split("=", 1) for kv in m.group(1).split(", ")) if m else {}
