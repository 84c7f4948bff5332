"""Run real Snakemake in a repository copy and read what it planned and did."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: Phases of the small test plans: short, but every phase present.
PHASES = {"idle_s": 0.3, "warmup_s": 0.2, "load_s": 0.8, "cooldown_s": 0.1}

#: The small plan of the workflow tests: H0 on both stacks, H2B at H0's U_work (a
#: dependency across hypotheses) and H3 over H0 (an analytical hypothesis).
SMALL: dict[str, Any] = {
    "results_dir": "results",
    "stacks": {
        "A": {"file": "config/stacks/sim-uma.yaml"},
        "B": {"file": "config/stacks/sim-tiered.yaml"},
    },
    "defaults": {
        "repetitions": 1,
        "seed": 1,
        "phases": PHASES,
        "telemetry": {"cadence_ms": 100, "devices": "auto"},
        "workload": {
            "kind": "fixed_context",
            "context_tokens": 64,
            "output_tokens": 4,
            "nonce": True,
        },
        "load": {"kind": "closed", "users": 2},
    },
    "hypotheses": {
        "H0": {
            "stacks": ["A", "B"],
            "sweep": [
                {"key": "load.users", "role": "concurrency", "name": "users", "values": [1, 2]}
            ],
        },
        "H2B": {
            "stacks": ["B"],
            "load": {"kind": "closed", "users": "u_work"},
            "sweep": [
                {
                    "key": "workload.context_tokens",
                    "role": "context",
                    "name": "ctx",
                    "values": [64, 128],
                }
            ],
        },
        "H3": {"analytical": {"from": ["H0"]}},
    },
}


@dataclass
class SmkResult:
    returncode: int
    out: str

    def planned(self, rule: str) -> list[dict[str, str]]:
        """Wildcards of every job of ``rule`` that Snakemake listed (dry or real run)."""
        jobs = []
        for block in re.split(r"\n(?=\[|rule |localrule )", self.out):
            m = re.search(rf"(?:local)?rule {re.escape(rule)}:\n", block)
            if not m:
                continue
            w = re.search(r"wildcards: (.*)", block[m.end() :])
            wild = dict(kv.split("=", 1) for kv in w.group(1).split(", ")) if w else {}
            jobs.append(wild)
        return jobs

    def job_counts(self) -> dict[str, int]:
        """The 'Job stats' table of the run."""
        m = re.search(r"Job stats:\n(.*?)\n\n", self.out + "\n\n", re.S)
        counts: dict[str, int] = {}
        if m:
            for line in m.group(1).splitlines()[2:]:
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
        return counts


def snakemake(cwd: Path, *args: str, timeout: float = 600) -> SmkResult:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return SmkResult(proc.returncode, proc.stdout + proc.stderr)


def start_snakemake(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """Start Snakemake in its own process group (so a test can Ctrl-C it like a terminal)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", *args]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def write_config(root: Path, config: dict) -> None:
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


#: The statuses a verdict may have (docs/ANALYSIS.md).
VERDICT_STATUSES = {"supported", "not supported", "inconclusive", "invalid"}


def telemetry_samples(root: Path, pattern: str = "raw/**/telemetry.jsonl") -> list[dict[str, Any]]:
    """Every telemetry sample (``kind: sample``) of a repository copy's raw runs (those
    ``pattern`` matches under ``results``)."""
    rows = []
    for f in (root / "results").glob(pattern):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "sample"]


def run_infos(root: Path) -> list[dict[str, Any]]:
    """Every point's ``run.json`` of a repository copy, in path order."""
    return [json.loads(f.read_text()) for f in sorted((root / "results" / "raw").rglob("run.json"))]


def verdict_statuses(root: Path, *hyps: str) -> dict[str, str]:
    """The status of each hypothesis's ``verdict.json`` in a repository copy."""
    summary = root / "results" / "summary"
    return {h: json.loads((summary / h / "verdict.json").read_text())["status"] for h in hyps}


def processes_of(root: Path) -> list[tuple[int, str]]:
    """Live processes of a repository copy: started in it (cwd inside ``root``) or naming
    it on their command line. The workflow passes relative paths, so a scan of command
    lines alone would miss a server that outlived its Snakemake."""
    found = []
    inside = str(root.resolve())
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cwd = os.readlink(d / "cwd")
        except OSError:
            continue
        if state != "Z" and (cwd == inside or cwd.startswith(inside + "/") or inside in cmd):
            found.append((int(d.name), cmd.strip()))
    return found


def wait_no_orphans(root: Path, timeout: float = 10.0) -> list[tuple[int, str]]:
    """Processes of ``root`` still alive after up to ``timeout`` seconds (want: none)."""
    deadline = time.monotonic() + timeout
    while (left := processes_of(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def interrupt(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C: SIGINT to the whole foreground process group."""
    os.killpg(proc.pid, signal.SIGINT)
