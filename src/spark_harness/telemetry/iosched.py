"""The block I/O scheduler of the device under a directory, held for one point.

Why a plan sets it (``qos.io_scheduler``): under a deep perturbation (H4's heavy
profile) most requests wait in the kernel's scheduler, not in the device, and the
scheduler decides who goes next. ``mq-deadline`` serves reads before writes and each in
sector order, so a server's read waits more or less depending on where its file landed
relative to the perturbation's files, a placement that changes with every server start
(on the demo's virtio disk the heavy point's G3 reads fell into a 3.8 ms and a 5.5 ms
regime, one per server lifetime). ``none`` serves requests in arrival order, as an NVMe
drive does by default, so the guest's queue no longer orders reads by where their files
lie. (On a virtual disk without indirect descriptors a read's wait also depends on how
its buffer's pages lie in memory; the simulator's and the generator's buffers lie in
huge pages: spark_harness/iobuf.py.) Nor is a read's wait the device's average read
await: a lone reader beside the deep queue saw a median of ~1.2 ms under a 4 ms average.

Setting it needs write access to sysfs (root); where that is refused, the point runs
under the scheduler it found and the record says why. The previous scheduler is put
back when the point ends, including on Ctrl-C or SIGTERM (not on SIGKILL).
"""

from __future__ import annotations

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
def held_scheduler(
    path: str | os.PathLike[str], name: str, sys_dev_block: Path = SYS_DEV_BLOCK
) -> Iterator[dict[str, Any]]:
    """Run the device holding ``path`` under scheduler ``name`` inside the block; yield
    the record for ``run.json``: device, requested, before, applied and, where it was
    not applied, the reason."""
    record: dict[str, Any] = {"requested": name, "applied": False}
    changed_file: Path | None = None
    try:
        dev = device_of(path, sys_dev_block)
        file = queue_dir(dev, sys_dev_block) / "scheduler"
        offered, before = parse_scheduler(file.read_text())
        record.update(device=dev.disk, before=before)
        if name not in offered:
            record["reason"] = f"{dev.disk} offers no scheduler {name!r} (it offers {offered})"
        elif before == name:
            record["applied"] = True
        else:
            file.write_text(name)
            changed_file = file
            record["applied"] = True
    except (DeviceNotFound, OSError) as e:
        record["reason"] = f"cannot set the I/O scheduler under {path}: {e}"
    if not record["applied"]:
        log.warning("I/O scheduler %r not applied: %s", name, record["reason"])
    try:
        yield record
    finally:
        if changed_file is not None:
            try:
                changed_file.write_text(str(record["before"]))
                record["restored"] = True
            except OSError as e:
                record["restored"] = False
                log.warning("could not restore I/O scheduler %r: %s", record["before"], e)
