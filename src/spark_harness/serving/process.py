"""Process plumbing shared by the service commands: signals, ports, orphan prevention.

Snakemake stops a service with SIGTERM when its consumer is done and with SIGKILL when
the consumer failed. A SIGKILLed parent cannot clean up, so every child we start asks
the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``) and runs in its own
process group, which the parent terminates as a whole on an orderly stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import random
import signal
import socket
import threading
from collections.abc import Callable

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
