"""Holding the contended device's I/O scheduler for a point, on a stand-in sysfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_harness.telemetry.devices import DeviceNotFound, device_of
from spark_harness.telemetry.iosched import held_scheduler, parse_scheduler


def fake_sysfs(root: Path, under: Path, scheduler: str) -> tuple[Path, Path]:
    """A /sys/dev/block holding only the device of ``under`` (its real major:minor), a
    whole disk whose queue/scheduler reads ``scheduler``: (sys_dev_block, that file)."""
    try:
        dev = device_of(under)
    except DeviceNotFound as e:
        pytest.skip(f"{under} is not on a block device here: {e}")
    disk = root / "devices" / "vdz"
    (disk / "queue").mkdir(parents=True)
    (disk / "queue" / "scheduler").write_text(scheduler + "\n")
    sys_dev_block = root / "dev" / "block"
    sys_dev_block.mkdir(parents=True)
    (sys_dev_block / f"{dev.major}:{dev.minor}").symlink_to(disk)
    return sys_dev_block, disk / "queue" / "scheduler"


@pytest.mark.parametrize(
    ("text", "offered", "current"),
    [
        ("none [mq-deadline] kyber\n", ["none", "mq-deadline", "kyber"], "mq-deadline"),
        ("[none] mq-deadline kyber bfq", ["none", "mq-deadline", "kyber", "bfq"], "none"),
        ("none\n", ["none"], "none"),  # a device without a choice (dm, some NVMe)
    ],
)
def test_parse_scheduler_reads_the_offered_and_the_current(
    text: str, offered: list[str], current: str
) -> None:
    assert parse_scheduler(text) == (offered, current)


def test_the_scheduler_is_set_for_the_block_and_put_back(tmp_path: Path) -> None:
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "none [mq-deadline] kyber")
    with held_scheduler(tmp_path / "g3" / "not-yet", "none", sysfs) as record:
        assert file.read_text() == "none"
        assert record == {"requested": "none", "applied": True, "device": "vdz",
                          "before": "mq-deadline"}  # fmt: skip
    assert file.read_text() == "mq-deadline"
    assert record["restored"] is True


def test_the_scheduler_is_put_back_when_the_point_is_interrupted(tmp_path: Path) -> None:
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "none [mq-deadline] kyber")
    with pytest.raises(KeyboardInterrupt), held_scheduler(tmp_path, "none", sysfs):
        raise KeyboardInterrupt("SIGTERM")
    assert file.read_text() == "mq-deadline"


def test_a_scheduler_already_in_use_is_left_alone(tmp_path: Path) -> None:
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "[none] mq-deadline kyber")
    with held_scheduler(tmp_path, "none", sysfs) as record:
        pass
    assert record["applied"] is True and "restored" not in record
    assert file.read_text() == "[none] mq-deadline kyber\n"


def test_a_scheduler_the_device_does_not_offer_is_reported_not_applied(tmp_path: Path) -> None:
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "none [mq-deadline] kyber")
    with held_scheduler(tmp_path, "bfq", sysfs) as record:
        pass
    assert record["applied"] is False
    assert "vdz offers no scheduler 'bfq'" in record["reason"]
    assert "kyber" in record["reason"]
    assert file.read_text() == "none [mq-deadline] kyber\n"


def test_a_refused_write_runs_the_point_under_the_scheduler_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without root, sysfs refuses the write: the point goes on, the record says why."""
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "none [mq-deadline] kyber")
    real_write = Path.write_text

    def refuse(self: Path, data: str, *args: object, **kwargs: object) -> int:
        if self == file:
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", refuse)
    with held_scheduler(tmp_path, "none", sysfs) as record:
        pass
    assert record["applied"] is False and "Permission denied" in record["reason"]
    assert record["before"] == "mq-deadline" and "restored" not in record


def test_a_path_without_a_block_device_is_reported_not_applied() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat("/").st_dev:
        pytest.skip("/dev/shm is not a separate filesystem here")
    with held_scheduler(shm, "none") as record:
        pass
    assert record["applied"] is False and "without a block device" in record["reason"]
