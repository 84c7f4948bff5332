"""Run real Snakemake in a repository copy and read what it planned and did."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml


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


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line contains ``text`` (the PID scan for orphans)."""
    found = []
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append((int(d.name), cmd.strip()))
    return found


def wait_no_processes(text: str, timeout: float = 10.0) -> list[tuple[int, str]]:
    """Processes still mentioning ``text`` after up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = processes_mentioning(text)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def interrupt(proc: subprocess.Popen[str]) -> None:
    """Ctrl-C: SIGINT to the whole foreground process group."""
    os.killpg(proc.pid, signal.SIGINT)
