"""The device's unloaded read latency: the baseline a loaded read await is compared with.

Why: a read await says how long the device took per read, so "await rises under load"
needs the await of the same device, for reads of the same size, when nothing queues. An
idle phase does not give it: on a quiet server it completes no read at all (iostat
prints 0.00 for it, which is no latency). So the point's load generator, once the server
is ready and before the idle phase (whose device reads are a baseline of their own),
writes a small file in the directory contention goes to (G3's, else the point's scratch
directory: the device the sidecar watches) and reads it back with ``O_DIRECT``, one read
in flight, at a few request sizes. The result is each size's mean read time, timed
around the system call: the kernel's own per-device read time counts whole milliseconds
over an interval (a few dozen reads of 0.2 ms move it by a third), and the system call's
overhead (tens of microseconds) only makes the baseline higher, so an await found above
it is above it.

Sizes stop at the device's largest request (``max_sectors_kb``): a larger read is split
into requests that run side by side, and the await of a request is what is compared.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from pathlib import Path

from spark_harness.iobuf import contiguous_buffers

#: request sizes probed (bytes); the analysis interpolates between them
SIZES = (4096, 16384, 65536, 262144, 1 << 20)
READS_PER_SIZE = 32
#: distinct offsets the reads are drawn from (the file holds this many of the largest)
SLOTS = 16


class ProbeUnavailable(OSError):
    """No unloaded latency can be measured here (no O_DIRECT, no space, not writable)."""


def max_request_bytes(disk: str) -> int | None:
    """The largest request the block layer sends ``disk`` (None where unreadable)."""
    try:
        kb = int(Path(f"/sys/block/{disk}/queue/max_sectors_kb").read_text())
    except (OSError, ValueError):
        return None
    return kb * 1024


def unloaded_read_ms(
    directory: Path, max_bytes: int | None = None, seed: int = 0
) -> dict[int, float]:
    """Mean time (ms) of one ``O_DIRECT`` read per request size, one read in flight, of
    a file written in ``directory`` for the purpose and removed afterwards."""
    sizes = [s for s in SIZES if max_bytes is None or s <= max_bytes] or [SIZES[0]]
    slot = max(sizes)
    path = directory / f".spark-harness-probe-{os.getpid()}-{time.monotonic_ns()}"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_DIRECT, 0o600)
    except OSError as e:
        raise ProbeUnavailable(e.errno, f"cannot open a probe file in {directory}: {e}") from e
    try:
        (buf,) = contiguous_buffers(1, slot)
        buf[:] = os.urandom(slot)
        try:
            for i in range(SLOTS):
                os.pwritev(fd, [buf], i * slot)
            os.fsync(fd)
        except OSError as e:
            raise ProbeUnavailable(e.errno, f"cannot write a probe file in {directory}") from e
        rng = random.Random(seed)
        out: dict[int, float] = {}
        for size in sizes:
            view = buf[:size]
            total = 0
            for _ in range(READS_PER_SIZE):
                offset = rng.randrange(SLOTS * slot // size) * size
                t0 = time.perf_counter_ns()
                os.preadv(fd, [view], offset)
                total += time.perf_counter_ns() - t0
            out[size] = total / READS_PER_SIZE / 1e6
        return out
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()


def record(directory: Path) -> dict[str, object]:
    """``run.json``'s ``read_probe``: where it ran, the device under it and each request
    size's unloaded read time, or why there is none."""
    from spark_harness.telemetry.devices import DeviceNotFound, device_of, existing_ancestor

    where = existing_ancestor(directory)
    out: dict[str, object] = {"directory": str(where)}
    try:
        dev = device_of(where)
    except (DeviceNotFound, OSError) as e:
        return {**out, "unavailable": f"no block device under {where}: {e}"}
    out["device"] = dev.token
    try:
        ms = unloaded_read_ms(where, max_request_bytes(dev.disk))
    except OSError as e:
        return {**out, "unavailable": str(e)}
    return {**out, "unloaded_read_ms": {str(size): t for size, t in ms.items()}}
