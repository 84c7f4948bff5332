"""Holding the contended device's I/O scheduler and queue depth for a point, on a
stand-in sysfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_harness.telemetry.devices import DeviceNotFound, device_of
from spark_harness.telemetry.iosched import held_queue, parse_scheduler


def fake_sysfs(
    root: Path, under: Path, scheduler: str, nr_requests: int | None = 256
) -> tuple[Path, Path]:
    """A /sys/dev/block holding only the device of ``under`` (its real major:minor), a
    whole disk whose queue/scheduler reads ``scheduler`` and queue/nr_requests
    ``nr_requests``: (sys_dev_block, the scheduler file)."""
    try:
        dev = device_of(under)
    except DeviceNotFound as e:
        pytest.skip(f"{under} is not on a block device here: {e}")
    disk = root / "devices" / "vdz"
    (disk / "queue").mkdir(parents=True)
    (disk / "queue" / "scheduler").write_text(scheduler + "\n")
    if nr_requests is not None:
        (disk / "queue" / "nr_requests").write_text(f"{nr_requests}\n")
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
    with held_queue(tmp_path / "g3" / "not-yet", "none", sys_dev_block=sysfs) as records:
        assert file.read_text() == "none"
        assert records == {"io_scheduler": {"requested": "none", "applied": True, "device": "vdz",
                                            "before": "mq-deadline", "changed": True}}  # fmt: skip
    assert file.read_text() == "mq-deadline"
    assert records["io_scheduler"]["restored"] is True


def test_the_scheduler_is_put_back_when_the_point_is_interrupted(tmp_path: Path) -> None:
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "none [mq-deadline] kyber")
    with pytest.raises(KeyboardInterrupt), held_queue(tmp_path, "none", 8, sysfs):
        raise KeyboardInterrupt("SIGTERM")
    assert file.read_text() == "mq-deadline"
    assert (file.parent / "nr_requests").read_text() == "256"


def test_a_scheduler_already_in_use_is_left_alone(tmp_path: Path) -> None:
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "[none] mq-deadline kyber")
    with held_queue(tmp_path, "none", sys_dev_block=sysfs) as records:
        pass
    record = records["io_scheduler"]
    assert record["applied"] is True and "restored" not in record
    assert file.read_text() == "[none] mq-deadline kyber\n"


def test_a_scheduler_the_device_does_not_offer_is_reported_not_applied(tmp_path: Path) -> None:
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "none [mq-deadline] kyber")
    with held_queue(tmp_path, "bfq", sys_dev_block=sysfs) as records:
        pass
    record = records["io_scheduler"]
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
    with held_queue(tmp_path, "none", 8, sysfs) as records:
        pass
    for record in records.values():
        assert record["applied"] is False and "Permission denied" in record["reason"]
    assert records["io_scheduler"]["before"] == "mq-deadline"
    assert "restored" not in records["io_scheduler"]


def test_a_path_without_a_block_device_is_reported_not_applied() -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat("/").st_dev:
        pytest.skip("/dev/shm is not a separate filesystem here")
    with held_queue(shm, "none", 8) as records:
        pass
    for record in records.values():
        assert record["applied"] is False and "without a block device" in record["reason"]


def _kernel_like(monkeypatch: pytest.MonkeyPatch, file: Path) -> None:
    """Writes to ``file`` behave as the kernel's: a scheduler switch resets the depth to
    the new scheduler's default (128 under none, 256 under mq-deadline), and a depth
    under 4 is raised to 4."""
    real_write = Path.write_text
    depth = file.parent / "nr_requests"

    def write(self: Path, data: str, *args: object, **kwargs: object) -> int:
        if self == file:
            real_write(depth, "128" if data == "none" else "256")
        if self == depth:
            data = str(max(4, int(data)))
        return real_write(self, data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", write)


def test_the_depth_is_set_after_the_scheduler_and_both_are_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Setting the depth before the scheduler would lose it to the switch; putting the
    scheduler back last would leave its default instead of the depth found (here 64)."""
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "none [mq-deadline] kyber", 64)
    depth = file.parent / "nr_requests"
    _kernel_like(monkeypatch, file)
    with held_queue(tmp_path, "none", 8, sysfs) as records:
        assert (file.read_text(), depth.read_text()) == ("none", "8")
    assert (file.read_text(), depth.read_text()) == ("mq-deadline", "64")
    assert records["nr_requests"] == {"requested": 8, "applied": True, "device": "vdz",
                                      "before": 64, "changed": True, "in_effect": 8,
                                      "restored": True}  # fmt: skip


def test_the_depth_the_kernel_took_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "[none] mq-deadline", 128)
    _kernel_like(monkeypatch, file)
    with held_queue(tmp_path, nr_requests=2, sys_dev_block=sysfs) as records:
        pass
    assert records["nr_requests"]["in_effect"] == 4
    assert "io_scheduler" not in records
    assert (file.parent / "nr_requests").read_text() == "128"


def test_a_scheduler_switch_alone_puts_back_the_depth_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan that sets only the scheduler must not leave a depth the user had tuned at
    the scheduler's default."""
    sysfs, file = fake_sysfs(tmp_path / "sys", tmp_path, "none [mq-deadline] kyber", 64)
    _kernel_like(monkeypatch, file)
    with held_queue(tmp_path, "none", sys_dev_block=sysfs) as records:
        assert (file.parent / "nr_requests").read_text() == "128"
    assert (file.parent / "nr_requests").read_text() == "64"
    assert list(records) == ["io_scheduler"]
