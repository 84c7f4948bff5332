"""Storage I/O of the server's processes (planted reads and writes in a process tree)
and cgroup v2 io.stat."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spark_harness.telemetry.procio import (
    CgroupIOSampler,
    ProcessIOSampler,
    descendants,
    parse_io_stat,
    read_proc_io,
)
from spark_harness.telemetry.sampler import Unavailable

MIB = 1 << 20

# A "server": the parent starts a worker child; on each line on stdin the worker
# performs one planted I/O step and answers "done".
SERVER = textwrap.dedent(
    """
    import mmap, os, subprocess, sys
    if sys.argv[1] == "parent":
        child = subprocess.Popen([sys.executable, __file__, "worker", sys.argv[2]],
                                 stdin=sys.stdin, stdout=sys.stdout)
        print(child.pid, flush=True)
        child.wait()
        sys.stdin.readline()  # stay alive until told, having reaped the worker
        sys.exit(0)
    path = sys.argv[2]
    buf = mmap.mmap(-1, 1 << 20)
    for step in sys.stdin:
        step = step.strip()
        if step == "write":   # 8 MiB, synced: written to the device
            with open(path, "wb") as f:
                for _ in range(8):
                    f.write(os.urandom(1 << 20))
                f.flush(); os.fsync(f.fileno())
        elif step == "read":  # 8 MiB with O_DIRECT: read from the device
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            for off in range(0, 8 << 20, 1 << 20):
                os.preadv(fd, [buf], off)
            os.close(fd)
        elif step == "exit":
            print("done", flush=True)
            sys.exit(0)
        print("done", flush=True)
    """
)


def _step(proc: subprocess.Popen[str], what: str) -> None:
    assert proc.stdin and proc.stdout
    proc.stdin.write(what + "\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"


def test_planted_io_of_a_child_process_is_counted_and_survives_its_exit(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    data = tmp_path / "kv.bin"
    proc = subprocess.Popen(
        [sys.executable, str(script), "parent", str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout
        worker = int(proc.stdout.readline())
        sampler = ProcessIOSampler([proc.pid])
        assert descendants([proc.pid]) == {proc.pid: 0, worker: proc.pid}
        base = sampler.sample()
        _step(proc, "write")
        after_write = sampler.sample()
        assert after_write["server_write_bytes"] - base["server_write_bytes"] >= 8 * MIB
        _step(proc, "read")
        after_read = sampler.sample()
        read = after_read["server_read_bytes"] - after_write["server_read_bytes"]
        assert 8 * MIB <= read <= 9 * MIB  # the planted reads, plus at most some noise
        _step(proc, "exit")  # the worker exits and the parent reaps it
        time.sleep(0.2)
        after_exit = sampler.sample()
        assert after_exit["server_read_bytes"] >= after_read["server_read_bytes"]
        assert after_exit["server_write_bytes"] >= after_read["server_write_bytes"]
    finally:
        if proc.stdin:
            proc.stdin.write("\n")
            proc.stdin.close()
        proc.wait(10)
    # every server process gone: the last readings remain, never a drop to zero
    gone = sampler.sample()
    assert gone["server_write_bytes"] >= after_exit["server_write_bytes"]


def test_no_server_process_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        ProcessIOSampler([])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(Unavailable, match="does not exist"):
        ProcessIOSampler([dead.pid])


def test_read_proc_io_of_self() -> None:
    io = read_proc_io(os.getpid())
    assert {"read_bytes", "write_bytes", "rchar", "wchar"} <= set(io)


def test_parse_io_stat_sums_devices() -> None:
    text = (
        "259:0 rbytes=1048576 wbytes=4096 rios=16 wios=1 dbytes=0 dios=0\n"
        "254:0 rbytes=8192 wbytes=0 rios=2 wios=0 dbytes=0 dios=0\n"
    )
    assert parse_io_stat(text) == {
        "rbytes": 1056768,
        "wbytes": 4096,
        "rios": 18,
        "wios": 1,
        "dbytes": 0,
        "dios": 0,
    }


def test_cgroup_sampler_reads_the_servers_cgroup(tmp_path: Path) -> None:
    proc_root, cg_root = tmp_path / "proc", tmp_path / "cgroup"
    (proc_root / "4242").mkdir(parents=True)
    (proc_root / "4242" / "cgroup").write_text("0::/system.slice/server.scope\n")
    stat = cg_root / "system.slice" / "server.scope" / "io.stat"
    stat.parent.mkdir(parents=True)
    stat.write_text("259:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=0 dios=0\n")
    s = CgroupIOSampler([4242], proc=proc_root, mount=cg_root)
    assert s.sample() == {
        "cgroup_read_bytes": 100,
        "cgroup_write_bytes": 200,
        "cgroup_read_ios": 3,
        "cgroup_write_ios": 4,
    }


def test_cgroup_without_io_stat_is_unavailable(tmp_path: Path) -> None:
    proc_root = tmp_path / "proc"
    (proc_root / "4242").mkdir(parents=True)
    (proc_root / "4242" / "cgroup").write_text("0::/\n")
    with pytest.raises(Unavailable, match=r"io\.stat"):
        CgroupIOSampler([4242], proc=proc_root, mount=tmp_path / "cgroup")


def test_cgroup_sampler_on_this_host_reads_or_says_why_not() -> None:
    try:
        s = CgroupIOSampler([os.getpid()])
    except Unavailable as e:
        assert str(e)
        return
    out = s.sample()
    assert all(isinstance(v, int) and v >= 0 for v in out.values())
