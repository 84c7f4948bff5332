"""The request queue of the device under a directory (its I/O scheduler and depth),
held for one point.

Why a plan sets the scheduler (``qos.io_scheduler``): under a deep perturbation (H4's
heavy profile) most requests wait in the kernel's scheduler, not in the device, and the
scheduler decides who goes next. ``mq-deadline`` serves reads before writes and each in
sector order, so a server's read waits more or less depending on where its file landed
relative to the perturbation's files, a placement that changes with every server start
(on the demo's virtio disk the heavy point's G3 reads fell into a 3.8 ms and a 5.5 ms
regime, one per server lifetime). ``none`` serves requests in arrival order, as an NVMe
drive does by default.

Why it sets the depth (``qos.nr_requests``, the most requests the kernel hands the
device at once): on a virtual disk, requests the host holds wait by rules the guest
cannot see. With 60-odd in flight on the demo VM, a lone reader's 1 s mean latency
wandered between 2.6 and 9 ms while the perturbation's own held at 4 ms, and with 16 in
flight its 8 s mean sat at 0.7 or at 1.3 ms depending on the files; with at most 8 at
the device the rest wait in the guest's own queue, where every file is alike (1.5-1.8
ms, the same in every trial). On a local NVMe drive the queueing happens in the drive,
which is what H4 means to measure, so config/spark.yaml leaves the depth as found.

Setting either needs write access to sysfs (root); where that is refused, the point
runs with the queue it found and the record says why. What was there before is put back
when the point ends, including on Ctrl-C or SIGTERM (not on SIGKILL): the scheduler
first, since switching it resets the depth, then the depth.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from spark_harness.telemetry.devices import SYS_DEV_BLOCK, DeviceNotFound, device_of, queue_dir

log = logging.getLogger(__name__)


def parse_scheduler(text: str) -> tuple[list[str], str | None]:
    """(offered schedulers, the one in use) from a sysfs ``scheduler`` file:
    ``none [mq-deadline] kyber``; a device without a choice shows a bare ``none``."""
    names = text.split()
    current = next((n[1:-1] for n in names if n.startswith("[") and n.endswith("]")), None)
    offered = [n.strip("[]") for n in names]
    if current is None and len(offered) == 1:
        current = offered[0]
    return offered, current


@contextmanager
def held_queue(
    path: str | os.PathLike[str],
    scheduler: str | None = None,
    nr_requests: int | None = None,
    sys_dev_block: Path = SYS_DEV_BLOCK,
) -> Iterator[dict[str, dict[str, Any]]]:
    """Run the device holding ``path`` with I/O scheduler ``scheduler`` and queue depth
    ``nr_requests`` inside the block (None: as found); yield the records for
    ``run.json``, one per setting asked for: device, requested, before, applied (for the
    depth also ``in_effect``: the kernel clamps what it is given) and, where it was not
    applied, the reason."""
    records: dict[str, dict[str, Any]] = {}
    if scheduler is not None:
        records["io_scheduler"] = {"requested": scheduler, "applied": False}
    if nr_requests is not None:
        records["nr_requests"] = {"requested": nr_requests, "applied": False}
    queue: Path | None = None
    depth_before: str | None = None  # put back after a scheduler switch, asked for or not
    try:
        dev = device_of(path, sys_dev_block)
        queue = queue_dir(dev, sys_dev_block)
        with contextlib.suppress(FileNotFoundError):
            depth_before = (queue / "nr_requests").read_text().strip()
        for r in records.values():
            r["device"] = dev.disk
        if scheduler is not None:
            _set_scheduler(queue, scheduler, records["io_scheduler"])
        if nr_requests is not None:
            _set_depth(queue, nr_requests, records["nr_requests"], depth_before)
    except (DeviceNotFound, OSError) as e:
        for r in records.values():
            if not r["applied"]:
                r["reason"] = f"cannot set the request queue under {path}: {e}"
    for key, r in records.items():
        if not r["applied"]:
            log.warning("%s %r not applied: %s", key, r["requested"], r["reason"])
    try:
        yield records
    finally:
        if queue is not None:
            _restore(queue, depth_before, records)


def _set_scheduler(queue: Path, name: str, record: dict[str, Any]) -> None:
    offered, current = parse_scheduler((queue / "scheduler").read_text())
    record["before"] = current
    if name not in offered:
        record["reason"] = f"{record['device']} offers no scheduler {name!r} (it offers {offered})"
        return
    if current != name:
        (queue / "scheduler").write_text(name)
        record["changed"] = True
    record["applied"] = True


def _set_depth(queue: Path, n: int, record: dict[str, Any], before: str | None) -> None:
    """``before``: the depth before the point (a scheduler switch has reset it since)."""
    file = queue / "nr_requests"
    record["before"] = None if before is None else int(before)
    if int(file.read_text()) != n:
        file.write_text(str(n))
        record["changed"] = True
    record["in_effect"] = int(file.read_text())
    record["applied"] = True


def _restore(queue: Path, depth_before: str | None, records: dict[str, dict[str, Any]]) -> None:
    """The scheduler, then the depth (a scheduler switch resets it), as they were."""
    sched = records.get("io_scheduler", {})
    depth = records.get("nr_requests", {})
    if sched.get("changed"):
        _put_back(queue / "scheduler", str(sched["before"]), sched)
    if depth_before is not None and (depth.get("changed") or sched.get("changed")):
        _put_back(queue / "nr_requests", depth_before, depth)


def _put_back(file: Path, value: str, record: dict[str, Any]) -> None:
    """Write ``value`` back; say so in ``record`` where the plan asked for this setting."""
    try:
        file.write_text(value)
        ok = True
    except OSError as e:
        ok = False
        log.warning("could not restore %s to %r: %s", file, value, e)
    if record:
        record["restored"] = ok
