"""Which block device holds a directory, and what that device is.

The disk sampler watches the device under the G3 directory; the point's ``run.json``
keeps the device's facts (model, firmware, SMART) so a result can be traced to hardware.
Facts come from ``lsblk``, ``nvme`` (nvme-cli) and ``smartctl`` when installed, and are
recorded as absent otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SYS_DEV_BLOCK = Path("/sys/dev/block")
TOOL_TIMEOUT_S = 10.0


class DeviceNotFound(LookupError):
    """No block device stands behind a path (tmpfs, overlay, network filesystem)."""


@dataclass(frozen=True)
class BlockDevice:
    """A block device as ``/proc/diskstats`` names it."""

    name: str  # kernel name, e.g. nvme0n1p2, vda, dm-0
    major: int
    minor: int
    disk: str  # the whole disk (itself when not a partition)

    @property
    def token(self) -> str:
        """The ``<dev>`` part of ``disk_<dev>_*`` field names."""
        return field_token(self.name)


def field_token(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def existing_ancestor(path: str | os.PathLike[str]) -> Path:
    """The path itself or its nearest existing parent (a G3 directory may not exist yet)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def mount_source(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """Source device of the mount holding ``path`` (for filesystems with an anonymous
    st_dev, such as btrfs); of mounts stacked on one point, the last one is visible."""
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in mountinfo.read_text().splitlines():
        left, _, right = line.partition(" - ")
        mount_point = left.split()[4].encode().decode("unicode_escape")
        source = right.split()[1] if len(right.split()) > 1 else ""
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), source)
    return best[1] if best else None


def device_by_number(major: int, minor: int, sys_dev_block: Path = SYS_DEV_BLOCK) -> BlockDevice:
    link = sys_dev_block / f"{major}:{minor}"
    if not link.exists():
        raise DeviceNotFound(f"no block device {major}:{minor} in {sys_dev_block}")
    real = link.resolve()
    disk = real.parent.name if (real / "partition").exists() else real.name
    return BlockDevice(name=real.name, major=major, minor=minor, disk=disk)


def device_of(
    path: str | os.PathLike[str],
    sys_dev_block: Path = SYS_DEV_BLOCK,
    mountinfo: Path = Path("/proc/self/mountinfo"),
) -> BlockDevice:
    """The block device whose filesystem holds ``path``; DeviceNotFound if there is none."""
    p = existing_ancestor(path)
    dev = p.stat().st_dev
    major, minor = os.major(dev), os.minor(dev)
    if major == 0:  # anonymous device number: look the mount's source up instead
        source = mount_source(p, mountinfo)
        if not source or not source.startswith("/dev/"):
            raise DeviceNotFound(f"{p} is on a filesystem without a block device ({source})")
        rdev = os.stat(source).st_rdev
        major, minor = os.major(rdev), os.minor(rdev)
    return device_by_number(major, minor, sys_dev_block)


def device_by_name(name: str, sys_dev_block: Path = SYS_DEV_BLOCK) -> BlockDevice:
    """A device given by kernel name or ``/dev`` path (``nvme0n1``, ``/dev/vda``)."""
    kname = os.path.basename(os.path.realpath(name)) if name.startswith("/") else name
    for link in sys_dev_block.iterdir():
        if link.resolve().name == kname:
            major, minor = (int(x) for x in link.name.split(":"))
            return device_by_number(major, minor, sys_dev_block)
    raise DeviceNotFound(f"no block device named {name!r}")


# ------------------------------------------------------------------------- facts
def queue_dir(dev: BlockDevice, sys_dev_block: Path = SYS_DEV_BLOCK) -> Path:
    """The sysfs ``queue`` directory of ``dev`` (a partition's is its disk's)."""
    node = (sys_dev_block / f"{dev.major}:{dev.minor}").resolve()
    if not (node / "queue").exists():
        node = node.parent
    return node / "queue"


def _sysfs_facts(dev: BlockDevice, sys_dev_block: Path) -> dict[str, Any]:
    queue = queue_dir(dev, sys_dev_block)
    out: dict[str, Any] = {}
    for key in ("rotational", "logical_block_size", "max_sectors_kb", "nr_requests", "scheduler"):
        try:
            out[key] = (queue / key).read_text().strip()
        except OSError:
            continue
    return out


def _run_tool(argv: list[str], package: str) -> dict[str, Any]:
    """Run a facts tool; its JSON (or text) output, or why there is none."""
    if shutil.which(argv[0]) is None:
        return {"absent": f"{argv[0]} not installed (package {package})"}
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"absent": f"{' '.join(argv)} failed: {e}"}
    try:
        return {"argv": argv, "rc": proc.returncode, "json": json.loads(proc.stdout)}
    except json.JSONDecodeError:
        return {
            "argv": argv,
            "rc": proc.returncode,
            "text": proc.stdout[-4000:],
            "stderr": proc.stderr[-2000:],
        }


def facts(
    paths: Sequence[str | os.PathLike[str]], sys_dev_block: Path = SYS_DEV_BLOCK
) -> dict[str, Any]:
    """Facts of the devices holding ``paths``: which device each path is on, and per
    device its sysfs queue settings and ``lsblk``/``nvme``/``smartctl`` output, each
    recorded as absent (with the package to install) where the tool is missing."""
    out: dict[str, Any] = {"paths": {}, "devices": {}}
    for path in paths:
        try:
            dev = device_of(path, sys_dev_block)
        except (DeviceNotFound, OSError) as e:
            out["paths"][str(path)] = {"absent": str(e)}
            continue
        out["paths"][str(path)] = dev.name
        if dev.name in out["devices"]:
            continue
        disk = f"/dev/{dev.disk}"
        entry: dict[str, Any] = {"device": asdict(dev), "sysfs": _sysfs_facts(dev, sys_dev_block)}
        entry["lsblk"] = _run_tool(
            ["lsblk", "--json", "--bytes", "-o",
             "NAME,KNAME,PKNAME,TYPE,SIZE,ROTA,MODEL,SERIAL,REV,TRAN,FSTYPE,MOUNTPOINT,"
             "PHY-SEC,LOG-SEC,SCHED,RQ-SIZE", f"/dev/{dev.name}"],
            "util-linux",
        )  # fmt: skip
        if dev.disk.startswith("nvme"):
            entry["nvme_id_ctrl"] = _run_tool(["nvme", "id-ctrl", disk, "-o", "json"], "nvme-cli")
            entry["nvme_smart_log"] = _run_tool(
                ["nvme", "smart-log", disk, "-o", "json"], "nvme-cli"
            )
        else:
            entry["nvme_id_ctrl"] = {"absent": f"{dev.disk} is not an NVMe device"}
        entry["smartctl"] = _run_tool(["smartctl", "--json", "-a", disk], "smartmontools")
        out["devices"][dev.name] = entry
    return out
