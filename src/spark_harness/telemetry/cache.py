"""The cold-cache step of H1: evict files from the page cache and show that it happened.

Per file, ``posix_fadvise(DONTNEED)`` evicts clean pages (dirty ones are synced first);
it needs no privilege. Where permitted, ``/proc/sys/vm/drop_caches`` then drops the
whole page cache. The result records what was and was not possible, and how many bytes
of the files were resident before and after (``mincore``), so "cold" is a measurement,
not an assumption.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path
from typing import Any

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
PAGE = mmap.PAGESIZE

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long,
]  # fmt: skip
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
_MAP_FAILED = ctypes.c_void_p(-1).value


def resident_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of ``path`` now in the page cache (``mincore`` on a read-only mapping)."""
    size = os.path.getsize(path)
    if size == 0:
        return 0
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, f"mmap {path}: {os.strerror(err)}")
        try:
            pages = (size + PAGE - 1) // PAGE
            vec = ctypes.create_string_buffer(pages)
            if _libc.mincore(addr, size, vec) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mincore {path}: {os.strerror(err)}")
            resident = sum(b & 1 for b in vec.raw)
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)
    return min(size, resident * PAGE)


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"cannot drop from cache: {p} does not exist")
    return out


def _resident(files: list[Path]) -> int | None:
    try:
        return sum(resident_bytes(f) for f in files)
    except OSError:
        return None


def drop_page_cache(paths: list[Path], drop_caches: Path | None = DROP_CACHES) -> dict[str, Any]:
    """Evict ``paths`` (files, or directories walked) from the page cache.

    ``drop_caches=None`` skips the system-wide drop. Returns the files and bytes
    concerned, bytes resident before and after, per-file failures, and whether the
    system-wide drop was done (and why not).
    """
    files = _files([Path(p) for p in paths])
    out: dict[str, Any] = {
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "resident_before_bytes": _resident(files),
    }
    failed: dict[str, str] = {}
    for f in files:
        try:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fdatasync(fd)  # dirty pages are not evicted
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        except OSError as e:
            failed[str(f)] = str(e)
    out["fadvise"] = {"done": len(files) - len(failed), "failed": failed}
    if drop_caches is None:
        out["drop_caches"] = {"done": False, "reason": "not requested"}
    else:
        os.sync()
        try:
            drop_caches.write_text("1\n")
            out["drop_caches"] = {"done": True, "reason": None}
        except OSError as e:
            out["drop_caches"] = {"done": False, "reason": f"{drop_caches}: {e.strerror or e}"}
    out["resident_after_bytes"] = _resident(files)
    return out
