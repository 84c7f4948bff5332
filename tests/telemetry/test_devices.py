"""Which block device holds a path, and the facts recorded about it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from spark_harness.telemetry.devices import (
    BlockDevice,
    DeviceNotFound,
    device_by_name,
    device_of,
    facts,
    field_token,
    mount_source,
)


def _block_backed(path: Path) -> BlockDevice:
    try:
        return device_of(path)
    except DeviceNotFound as e:
        pytest.skip(f"{path} is not on a block device here: {e}")


def test_device_of_names_a_device_listed_in_diskstats(tmp_path: Path) -> None:
    dev = _block_backed(tmp_path)
    names = {line.split()[2] for line in Path("/proc/diskstats").read_text().splitlines()}
    assert dev.name in names
    assert dev.disk in names
    assert Path(f"/sys/dev/block/{dev.major}:{dev.minor}").exists()


def test_a_directory_that_does_not_exist_yet_resolves_to_its_parent_device(tmp_path: Path) -> None:
    dev = _block_backed(tmp_path)
    assert device_of(tmp_path / "g3" / "not" / "yet") == dev


def test_device_by_name_accepts_kernel_names_and_dev_paths(tmp_path: Path) -> None:
    dev = _block_backed(tmp_path)
    assert device_by_name(dev.name) == dev
    if Path(f"/dev/{dev.name}").exists():
        assert device_by_name(f"/dev/{dev.name}") == dev


def test_unknown_device_name_is_a_clear_error() -> None:
    with pytest.raises(DeviceNotFound, match="no-such-disk"):
        device_by_name("no-such-disk")


def test_tmpfs_has_no_block_device() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or mount_source(shm) != "tmpfs":
        pytest.skip("/dev/shm is not a tmpfs here")
    with pytest.raises(DeviceNotFound, match="without a block device"):
        device_of(shm)


def test_mount_source_takes_the_longest_and_last_mount(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
        "40 27 0:45 / /data rw,relatime - btrfs /dev/nvme0n1p2 rw,ssd\n"
        "41 27 0:46 / /data/my\\040dir rw - btrfs /dev/nvme1n1 rw\n"
        "25 24 0:23 / /dev/shm rw - tmpfs tmpfs rw\n"
        "30 25 0:27 / /dev/shm rw - tmpfs shm2 rw\n"
    )
    assert mount_source(Path("/data/g3/blocks"), info) == "/dev/nvme0n1p2"
    assert mount_source(Path("/data/my dir/x"), info) == "/dev/nvme1n1"
    assert mount_source(Path("/database"), info) == "/dev/vda"  # not under /data
    assert mount_source(Path("/dev/shm/x"), info) == "shm2"


def test_field_token_makes_device_names_usable_in_field_names() -> None:
    assert field_token("dm-0") == "dm_0"
    assert field_token("nvme0n1p2") == "nvme0n1p2"


def test_facts_record_the_device_and_absent_tools_by_package(tmp_path: Path) -> None:
    dev = _block_backed(tmp_path)
    out = facts([tmp_path, Path("/dev/shm")])
    assert out["paths"][str(tmp_path)] == dev.name
    entry = out["devices"][dev.name]
    assert entry["device"]["name"] == dev.name
    assert entry["sysfs"]["logical_block_size"].isdigit()
    if shutil.which("lsblk"):
        assert entry["lsblk"]["json"]["blockdevices"][0]["kname"] == dev.name
    else:
        assert "util-linux" in entry["lsblk"]["absent"]
    if not shutil.which("smartctl"):
        assert "smartmontools" in entry["smartctl"]["absent"]
    if dev.disk.startswith("nvme") and not shutil.which("nvme"):
        assert "nvme-cli" in entry["nvme_id_ctrl"]["absent"]
    if mount_source(Path("/dev/shm")) == "tmpfs":
        assert "absent" in out["paths"]["/dev/shm"]
