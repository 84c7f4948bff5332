"""Process plumbing shared by the service commands: signals, ports, orphan prevention.

Snakemake stops a service with SIGTERM when its consumer is done and with SIGKILL when
the consumer failed. A SIGKILLed parent cannot clean up, so every child we start asks
the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``) and runs in its own
process group, which the parent terminates as a whole on an orderly stop. A descendant
that leaves the group (``setsid``) is still found and killed: :class:`StackGuard`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send ``sig`` to this process when its parent exits (no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def child_preexec() -> None:
    """``preexec_fn`` for children of a service: die with the parent."""
    set_parent_death_signal(signal.SIGKILL)


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a TCP socket (port 0 = any free port); a taken port is a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortInUseError(f"port {port} on {host} is already in use") from e
        raise
    return sock


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for servers that must be told their port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_port_in(host: str, lo: int, hi: int, exclude: set[int] | None = None) -> int | None:
    """A free port in ``[lo, hi]`` (tried from a random start, so parallel services spread
    out), or None when every one is taken."""
    exclude = exclude or set()
    span = hi - lo + 1
    start = random.randrange(span)
    for i in range(span):
        port = lo + (start + i) % span
        if port not in exclude and port_is_free(host, port):
            return port
    return None


def port_is_free(host: str, port: int) -> bool:
    try:
        bind_socket(host, port).close()
    except PortInUseError:
        return False
    return True


class PortInUseError(OSError):
    """The requested port is taken by another process."""


class StopSignal:
    """Turns SIGTERM/SIGINT into an event a blocking service loop can wait on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: int | None = None

    def install(self) -> StopSignal:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        self.received = signum
        self.event.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def on_exit_signals(callback: Callable[[int], None]) -> None:
    """Run ``callback(signum)`` on SIGTERM or SIGINT (replacing earlier handlers)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: callback(s))


# ------------------------------------------------------------------ whole-stack kill
_PR_SET_CHILD_SUBREAPER = 36
#: Every process of a stack carries this variable (value: the stack's tag), through
#: ``setsid`` and double forks, so a sweep finds what left the process group.
TAG_ENV = "SPARK_HARNESS_STACK_TAG"


def become_subreaper() -> None:
    """Orphaned descendants are re-parented to us, not to init: we reap them."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _cgroup2_dir() -> Path | None:
    """This process's cgroup v2 directory, or None (no cgroup2 mount, or only v1)."""
    try:
        ours = next(
            line.split("::", 1)[1].strip()
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if line.startswith("0::")
        )
        mount = next(
            line.split(" - ")[0].split()[4]
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if line.split(" - ")[1].startswith("cgroup2 ")
        )
    except (OSError, StopIteration, IndexError):
        return None
    return Path(mount) / ours.lstrip("/")


def stack_pids(tag: str, cgroup: Path | None = None) -> set[int]:
    """Processes of the stack ``tag``: its cgroup's members and every process whose
    environment carries the tag (readable for our own processes), never ourselves."""
    pids: set[int] = set()
    if cgroup is not None:
        with contextlib.suppress(OSError):
            pids |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split()}
    needle = f"\0{TAG_ENV}={tag}\0".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in b"\0" + (entry / "environ").read_bytes():
                    pids.add(int(entry.name))
    pids.discard(os.getpid())
    return pids


def kill_stack(
    tag: str, cgroup: Path | None, sig: int = signal.SIGKILL, wait_s: float = 5.0
) -> None:
    """Send ``sig`` to every process of the stack; with SIGKILL, until none is left
    (``cgroup.kill`` first where there is a cgroup: nothing in it can escape)."""
    if sig == signal.SIGKILL and cgroup is not None:
        with contextlib.suppress(OSError):
            (cgroup / "cgroup.kill").write_text("1")
    deadline = time.monotonic() + wait_s
    while True:
        alive = [p for p in stack_pids(tag, cgroup) if pid_alive(p)]
        for pid in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        _reap()
        if not alive or sig != signal.SIGKILL or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def _reap() -> None:
    """Collect exited children (orphans re-parented to a subreaper included)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


class StackGuard:
    """All processes of one stack, killed as a whole (docs/SECURITY.md).

    Three layers: each process runs in its own process group and dies with us
    (``PR_SET_PDEATHSIG``); every process inherits ``TAG_ENV``, and where cgroup v2 is
    writable (root) it is put in a cgroup of its own before it runs, so a descendant
    that calls ``setsid`` is still found; and a sentinel process outside the stack waits
    for our death (a pidfd) to kill what is left when we are SIGKILLed.
    """

    def __init__(self) -> None:
        self.tag = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.cgroup = self._make_cgroup()
        self._sentinel: subprocess.Popen[bytes] | None = None

    def _make_cgroup(self) -> Path | None:
        base = _cgroup2_dir()
        if base is None:
            return None
        path = base / f"spark-harness-{self.tag}"
        try:
            path.mkdir()
        except OSError:  # not root, or a read-only hierarchy: the tag sweep remains
            return None
        if not (path / "cgroup.kill").exists():  # before Linux 5.14
            path.rmdir()
            return None
        return path

    def env(self) -> dict[str, str]:
        return {TAG_ENV: self.tag}

    def preexec(self) -> None:
        """``preexec_fn`` of a stack process: die with us, join the stack's cgroup."""
        child_preexec()
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.procs").write_text("0")

    def start_sentinel(self) -> None:
        """Start the process that kills the stack should we be SIGKILLed."""
        argv = [sys.executable, "-m", __name__, "sentinel", str(os.getpid()), self.tag]
        self._sentinel = subprocess.Popen(
            [*argv, str(self.cgroup or "")],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outside our group: our stop does not reach it
        )

    def close(self) -> None:
        """Kill what is left of the stack, remove its cgroup, end the sentinel."""
        kill_stack(self.tag, self.cgroup)
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()
        if self._sentinel is not None:
            self._sentinel.kill()
            self._sentinel.wait()


def sentinel(parent: int, tag: str, cgroup: str) -> None:
    """Wait for ``parent`` to exit, then kill the stack ``tag`` and remove its cgroup."""
    try:
        fd = os.pidfd_open(parent)
    except ProcessLookupError:
        fd = None
    if fd is not None:
        select.select([fd], [], [])
    group = Path(cgroup) if cgroup else None
    kill_stack(tag, group)
    if group is not None:
        with contextlib.suppress(OSError):
            group.rmdir()


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "sentinel":
        sys.exit("usage: python -m spark_harness.serving.process sentinel PID TAG CGROUP")
    sentinel(int(sys.argv[2]), sys.argv[3], sys.argv[4])
