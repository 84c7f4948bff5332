"""The cold-cache step: files really leave the page cache, and what could not be done
is said."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_harness.telemetry.cache import drop_page_cache, resident_bytes

MIB = 1 << 20


def _cached_file(path: Path, mib: int = 8) -> Path:
    path.write_bytes(os.urandom(mib * MIB))
    path.read_bytes()  # make sure it is in the page cache
    return path


def test_resident_bytes_sees_a_freshly_written_file(tmp_path: Path) -> None:
    f = _cached_file(tmp_path / "a.bin")
    assert resident_bytes(f) == 8 * MIB
    assert resident_bytes(_cached_file(tmp_path / "empty", 0)) == 0


def test_fadvise_evicts_the_files_without_privilege(tmp_path: Path) -> None:
    adapters = tmp_path / "adapters"
    adapters.mkdir()
    files = [_cached_file(adapters / f"lora{i}.safetensors", 4) for i in range(3)]
    single = _cached_file(tmp_path / "base.bin")
    out = drop_page_cache([adapters, single], drop_caches=None)
    assert out["files"] == 4 and out["bytes"] == 20 * MIB
    assert out["resident_before_bytes"] == 20 * MIB
    assert out["resident_after_bytes"] == 0
    assert out["fadvise"] == {"done": 4, "failed": {}}
    assert out["drop_caches"] == {"done": False, "reason": "not requested"}
    assert all(resident_bytes(f) == 0 for f in files)


def test_system_wide_drop_is_recorded_when_done(tmp_path: Path) -> None:
    # a stand-in for /proc/sys/vm/drop_caches: the real one would empty the cache of
    # every process on a shared test machine
    knob = tmp_path / "drop_caches"
    knob.write_text("")
    out = drop_page_cache([_cached_file(tmp_path / "a.bin")], drop_caches=knob)
    assert out["drop_caches"] == {"done": True, "reason": None}
    assert knob.read_text() == "1\n"


def test_system_wide_drop_not_permitted_is_recorded_not_raised(tmp_path: Path) -> None:
    knob = tmp_path / "no-such-dir" / "drop_caches"
    out = drop_page_cache([_cached_file(tmp_path / "a.bin")], drop_caches=knob)
    assert out["drop_caches"]["done"] is False
    assert "drop_caches" in out["drop_caches"]["reason"]
    assert out["resident_after_bytes"] == 0  # the per-file eviction still happened


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        drop_page_cache([tmp_path / "no-adapter"], drop_caches=None)
