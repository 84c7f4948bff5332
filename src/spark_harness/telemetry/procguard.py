"""Helper processes that die with the process that started them.

Snakemake SIGKILLs a failed job; anything that job started (fio, the builtin I/O
generator) must not live on to disturb the next point. Linux's ``PR_SET_PDEATHSIG``
delivers a signal when the parent exits; it survives ``execve``, so an external tool is
started through ``python -m spark_harness.telemetry.procguard PARENT_PID -- argv...``,
which arms it and then becomes the tool.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` when the parent exits; exit now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        sys.exit(1)


def guarded(argv: list[str]) -> list[str]:
    """``argv`` wrapped so that it dies with the calling process."""
    return [sys.executable, "-m", __name__, str(os.getpid()), "--", *argv]


def main(args: list[str]) -> None:
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m spark_harness.telemetry.procguard PARENT_PID -- COMMAND...")
    die_with_parent(int(args[0]))
    os.execvp(args[2], args[2:])


if __name__ == "__main__":
    main(sys.argv[1:])
