"""Storage I/O of the server's own processes: ``/proc/<pid>/io`` and cgroup v2 ``io.stat``.

Device counters see every process on the disk; these see only the server, which is how
the analysis separates KV traffic from whatever else runs on the host.

``server_read_bytes``/``server_write_bytes`` sum ``read_bytes``/``write_bytes`` (bytes
that reached the block layer) over the server's processes and all their descendants.
The sum stays cumulative as processes come and go: a process that exits while its
parent is watched is absorbed into the parent's counters when reaped (the kernel adds a
reaped child's I/O to its parent), any other exited process keeps its last reading.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil

from spark_harness.telemetry.sampler import Fields, Sampler, Unavailable

PROC = Path("/proc")
#: cgroup v2 io.stat key -> canonical field
IO_STAT_FIELDS = {
    "rbytes": "cgroup_read_bytes",
    "wbytes": "cgroup_write_bytes",
    "rios": "cgroup_read_ios",
    "wios": "cgroup_write_ios",
}
CHILDREN_REFRESH_S = 1.0


def read_proc_io(pid: int, proc: Path = PROC) -> dict[str, int]:
    """``/proc/<pid>/io`` as a dict (read_bytes, write_bytes, rchar, ...)."""
    out: dict[str, int] = {}
    for line in (proc / str(pid) / "io").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key.strip()] = int(value)
    return out


def children_of(pid: int, proc: Path = PROC) -> list[int]:
    """Direct children of ``pid`` from ``/proc/<pid>/task/*/children``."""
    out: list[int] = []
    for task in (proc / str(pid) / "task").iterdir():
        try:
            out.extend(int(x) for x in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return out


def descendants(roots: list[int], proc: Path = PROC) -> dict[int, int]:
    """Every live process under ``roots`` (themselves included) -> its parent pid."""
    out: dict[int, int] = {}
    stack = [(r, 0) for r in roots]
    while stack:
        pid, parent = stack.pop()
        if pid in out:
            continue
        try:
            kids = children_of(pid, proc)
        except FileNotFoundError:  # exited
            continue
        except OSError:  # kernel without CONFIG_PROC_CHILDREN
            kids = [c.pid for c in psutil.Process(pid).children()]
        out[pid] = parent
        stack.extend((k, pid) for k in kids)
    return out


class ProcessIOSampler(Sampler):
    """``server_read_bytes`` / ``server_write_bytes`` of the server's process tree."""

    name = "server_io"

    def __init__(self, pids: list[int], proc: Path = PROC) -> None:
        super().__init__()
        if not pids:
            raise Unavailable("the endpoint names no server process")
        self._roots = list(pids)
        self._proc = proc
        self._tree: dict[int, int] = {}
        self._tree_t = -1e9
        self._last: dict[int, tuple[int, int]] = {}
        self._gone = [0, 0]  # I/O of exited processes that no watched parent absorbed
        try:
            read_proc_io(pids[0], proc)
        except PermissionError as e:
            raise Unavailable(f"cannot read /proc/{pids[0]}/io: {e}") from e
        except FileNotFoundError as e:
            raise Unavailable(f"server process {pids[0]} does not exist") from e

    def sample(self) -> Fields:
        now = time.monotonic()
        if now - self._tree_t >= CHILDREN_REFRESH_S:
            self._tree = descendants(self._roots, self._proc) | {
                p: pp for p, pp in self._tree.items() if p in self._last
            }
            self._tree_t = now
        seen: dict[int, tuple[int, int]] = {}
        for pid in self._tree:
            try:
                io = read_proc_io(pid, self._proc)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            cur = (io["read_bytes"], io["write_bytes"])
            prev = self._last.get(pid)
            if prev is not None and (cur[0] < prev[0] or cur[1] < prev[1]):
                continue  # a zombie reads as zero: treat as exited
            seen[pid] = cur
        for pid, last in self._last.items():
            if pid not in seen and self._tree.get(pid) not in seen:
                self._gone[0] += last[0]
                self._gone[1] += last[1]
        for pid in set(self._last) - set(seen):
            self._tree.pop(pid, None)
        self._last = seen
        if not seen and not any(self._gone):
            raise RuntimeError(f"none of the server processes {self._roots} is readable")
        return {
            "server_read_bytes": self._gone[0] + sum(v[0] for v in seen.values()),
            "server_write_bytes": self._gone[1] + sum(v[1] for v in seen.values()),
        }


def cgroup2_mount(mountinfo: Path = PROC / "self" / "mountinfo") -> Path | None:
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split()[:1] == ["cgroup2"]:
            return Path(left.split()[4])
    return None


def parse_io_stat(text: str) -> dict[str, int]:
    """Sum of each ``io.stat`` key over all devices."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if value.isdigit():
                out[key] = out.get(key, 0) + int(value)
    return out


class CgroupIOSampler(Sampler):
    """``cgroup_*`` fields: I/O of the cgroup(s) holding the server processes."""

    name = "cgroup_io"

    def __init__(self, pids: list[int], proc: Path = PROC, mount: Path | None = None) -> None:
        super().__init__()
        root = mount or cgroup2_mount(proc / "self" / "mountinfo")
        if root is None:
            raise Unavailable("no cgroup v2 hierarchy is mounted")
        files: set[Path] = set()
        for pid in pids:
            try:
                lines = (proc / str(pid) / "cgroup").read_text().splitlines()
            except OSError:
                continue
            for line in lines:
                if line.startswith("0::"):
                    files.add(root / line[3:].lstrip("/") / "io.stat")
        self._files = sorted(f for f in files if f.exists())
        if not self._files:
            where = ", ".join(str(f) for f in sorted(files)) or f"no cgroup v2 entry for {pids}"
            raise Unavailable(f"no io.stat for the server's cgroup ({where})")

    def sample(self) -> Fields:
        total: dict[str, int] = {}
        for f in self._files:
            for key, value in parse_io_stat(f.read_text()).items():
                total[key] = total.get(key, 0) + value
        return {field: total.get(key, 0) for key, field in IO_STAT_FIELDS.items()}
