"""Result archives: bundle a results tree for safekeeping or transfer, and restore it.

``create`` (the ``archive`` rule) writes ``archives/<name>.tar.gz`` holding, under
``<results_dir>/``: the measured runs (``raw``, ``imported``, ``failed``), the ingested
tables, summaries, verdicts, figures and logs, the report (``report.html``, where
``snakemake --report`` made one), and ``archive/``: ``config.yaml`` (the resolved plan,
with its ``track``, so it is a whole plan of its own), ``versions.json`` (Python, the
harness and every dependency) and ``manifest.json`` (each file with its size and
SHA-256). The point's scratch files and live service files are not results and stay
out.

``restore`` (``spark-harness restore``) unpacks into a checkout and checks every file
against the manifest. Snakemake compares modification times (a ``script:`` rule's output
is stale when its script is newer), and a fresh clone's files are all new; so every
restored file is stamped *now*, in the order the files were made: the runs, tables and
summaries are up to date for the checkout's code and no measurement reruns. With
``--redraw`` the figures are left out, and ``snakemake --cores 1 figures --configfile
<results_dir>/archive/config.yaml`` draws them again from the restored summaries without
running any load (docs/LEGACY.md).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from spark_harness import __version__
from spark_harness.files import atomic_writer
from spark_harness.secrets import redact

#: Folders of a results tree that are results (services/ and scratch/ are not).
KEPT = ("raw", "imported", "failed", "ingest", "summary", "figures", "logs")
REPORT = "report.html"
FIGURES = "figures"
META_DIR = "archive"
MANIFEST = "manifest.json"
ARCHIVE_FORMAT = 1


class ArchiveError(ValueError):
    """An archive cannot be made or restored; the message says which file and why."""


def versions() -> dict[str, Any]:
    """Python, platform, the harness and every installed dependency it declares."""
    deps: dict[str, str | None] = {}
    for req in importlib.metadata.requires("spark-harness") or []:
        if "extra ==" in req:
            continue
        name = re.split(r"[\s;<>=!~\[]", req, maxsplit=1)[0]
        try:
            deps[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            deps[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "spark_harness": __version__,
        "dependencies": dict(sorted(deps.items())),
    }


def _files(results: Path) -> Iterator[Path]:
    for sub in KEPT:
        d = results / sub
        if d.is_dir():
            yield from sorted(p for p in d.rglob("*") if p.is_file() and not p.is_symlink())
    if (results / REPORT).is_file():
        yield results / REPORT


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def create(
    results: str | Path, config: Mapping[str, Any], track: str, out: str | Path, name: str
) -> dict[str, Any]:
    """Write the archive ``out`` of the results tree ``results``; return its manifest."""
    results = Path(results)
    files = list(_files(results))
    if not any(p.name == "run.json" for p in files):
        raise ArchiveError(f"{results}: no measured or imported run to archive")
    root = results.name
    plan = redact({**dict(config), "track": track})  # no secret leaves in an archive
    manifest = {
        "format": ARCHIVE_FORMAT,
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results_dir": root,
        "track": track,
        "report": (results / REPORT).is_file(),
        "files": {
            str(p.relative_to(results)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
            for p in files
        },
    }
    # the metadata is older than every result, so Snakemake never sees it as an input
    # newer than the files made from it
    stamp = min(p.stat().st_mtime for p in files)
    with atomic_writer(Path(out), "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
        meta = f"{root}/{META_DIR}"
        _add_bytes(
            tar, f"{meta}/config.yaml", yaml.safe_dump(plan, sort_keys=False).encode(), stamp
        )
        _add_bytes(tar, f"{meta}/versions.json", json.dumps(versions(), indent=2).encode(), stamp)
        _add_bytes(tar, f"{meta}/{MANIFEST}", json.dumps(manifest, indent=2).encode(), stamp)
        for p in files:
            tar.add(p, arcname=f"{root}/{p.relative_to(results)}", recursive=False)
    return manifest


def restore(
    archive: str | Path, into: str | Path = ".", force: bool = False, redraw: bool = False
) -> Path:
    """Unpack ``archive`` into the checkout ``into`` (without figures if ``redraw``),
    check it against the manifest and stamp it now; return the results directory.

    An archive is untrusted input (docs/SECURITY.md): every member is checked and
    confined before anything is written, and nothing reaches ``into`` unless every
    check passed (see :func:`_unpack`).
    """
    archive, into = Path(archive), Path(into)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            root, files = _checked_members(tar, archive)
            dest = into / root
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                raise ArchiveError(f"{dest} exists and is not a directory")
            if dest.exists() and any(dest.iterdir()) and not force:
                raise ArchiveError(
                    f"{dest} exists and is not empty; pass --force to restore over it"
                )
            into.mkdir(parents=True, exist_ok=True)
            restored = _unpack(tar, archive, root, files, into, redraw)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise ArchiveError(f"{archive}: not a readable result archive: {e}") from e
    _stamp_now(restored)
    return dest


def _stamp_now(files: list[Path]) -> None:
    """Give ``files`` modification times just before now, 1 µs apart, oldest first: newer
    than the checkout's code, in the order they were made."""
    ordered = sorted(files, key=lambda p: p.stat().st_mtime_ns)
    now = time.time_ns()
    for i, p in enumerate(ordered):
        t = now - (len(ordered) - i) * 1000
        os.utime(p, ns=(t, t))


#: A results folder's name: no `.`, `..`, hidden folder (`.git`) or separator.
_ROOT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
#: The archive's own files, which the manifest cannot list (it is one of them).
META_FILES = tuple(f"{META_DIR}/{f}" for f in ("config.yaml", "versions.json", MANIFEST))


def _relative(path: str, what: str) -> tuple[str, ...]:
    """``path``'s parts, or ArchiveError unless it is a plain relative path (no ``..``,
    ``.``, empty part, absolute path, backslash or control character)."""
    parts = tuple(path.split("/"))
    if (
        not path
        or path.startswith("/")
        or any(p in ("", ".", "..") or "\\" in p or not p.isprintable() for p in parts)
    ):
        raise ArchiveError(f"{what} {path!r} is not a plain relative path")
    return parts


def _checked_members(
    tar: tarfile.TarFile, archive: Path
) -> tuple[str, dict[str, tuple[tarfile.TarInfo, str | None]]]:
    """The results folder's name and each regular file (path under it -> member and
    its manifest SHA-256), after checking every member and the manifest: one
    validly named top folder, regular files and directories only, each file listed
    in the manifest with its size, every manifest path confined."""
    members = tar.getmembers()
    roots = {m.name.split("/", 1)[0] for m in members}
    if len(roots) != 1:
        raise ArchiveError(f"{archive}: expected one results folder, found {sorted(roots)}")
    root = roots.pop()
    if not _ROOT_NAME.fullmatch(root):
        raise ArchiveError(f"{archive}: {root!r} is not a valid results folder name")
    files: dict[str, tarfile.TarInfo] = {}
    for m in members:
        parts = _relative(m.name.rstrip("/") if m.isdir() else m.name, f"{archive}: member")
        if not (m.isreg() or m.isdir()):
            raise ArchiveError(f"{archive}: {m.name} is not a regular file or directory")
        rel = "/".join(parts[1:])
        if m.isreg():
            if not rel or rel in files:
                raise ArchiveError(f"{archive}: {m.name} is not a file or appears twice")
            files[rel] = m
    manifest = _manifest(tar, archive, files)
    listed = manifest["files"]
    for rel, facts in listed.items():
        _relative(rel, f"{archive}: manifest path")
        if (
            not isinstance(facts, dict)
            or not isinstance(facts.get("sha256"), str)
            or not isinstance(facts.get("bytes"), int)
        ):
            raise ArchiveError(f"{archive}: manifest entry {rel!r} needs `bytes` and `sha256`")
        if rel not in files:
            raise ArchiveError(f"{archive}: {root}/{rel} is missing or differs from the manifest")
        if files[rel].size != facts["bytes"]:
            raise ArchiveError(f"{archive}: {root}/{rel} is missing or differs from the manifest")
    unlisted = sorted(set(files) - set(listed) - set(META_FILES))
    if unlisted:
        raise ArchiveError(f"{archive}: {root}/{unlisted[0]} is not in the manifest")
    return root, {
        rel: (m, listed[rel]["sha256"] if rel in listed else None) for rel, m in files.items()
    }


def _manifest(
    tar: tarfile.TarFile, archive: Path, files: Mapping[str, tarfile.TarInfo]
) -> dict[str, Any]:
    """The archive's manifest, or ArchiveError when it is missing or malformed."""
    member = files.get(f"{META_DIR}/{MANIFEST}")
    if member is None or member.size > 64 * 2**20:
        raise ArchiveError(f"{archive}: no {META_DIR}/{MANIFEST} (or an oversized one)")
    fh = tar.extractfile(member)
    assert fh is not None  # a regular file
    try:
        manifest = json.loads(fh.read())
    except (ValueError, RecursionError) as e:
        raise ArchiveError(f"{archive}: {META_DIR}/{MANIFEST} is not valid JSON") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArchiveError(f"{archive}: {META_DIR}/{MANIFEST} must be an object with `files`")
    return manifest


def _unpack(
    tar: tarfile.TarFile,
    archive: Path,
    root: str,
    files: Mapping[str, tuple[tarfile.TarInfo, str | None]],
    into: Path,
    redraw: bool,
) -> list[Path]:
    """Write the checked ``files`` (no figures if ``redraw``) into a temporary folder in
    ``into``, each checked against its SHA-256 as it is written; move them into
    ``into/root`` only when all passed; return the restored files.

    Files are written by hand, never by ``extractall``: only directories this function
    created lie on their paths, so no link in the archive can redirect a write.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".restore-", dir=into))
    try:
        wanted = {r: f for r, f in files.items() if not (redraw and r.startswith(f"{FIGURES}/"))}
        for rel, (member, sha) in wanted.items():
            path = tmp.joinpath(*rel.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None  # a regular file
            h = hashlib.sha256()
            with src, open(path, "xb") as out:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            mtime = min(max(int(member.mtime), 0), 2**33)  # any header value is valid input
            os.utime(path, (mtime, mtime))
            if sha is not None and h.hexdigest() != sha:
                raise ArchiveError(f"{archive}: {root}/{rel} differs from the manifest")
        return _move_into_place(tmp, into / root, sorted(wanted))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, dest: Path, rels: list[str]) -> list[Path]:
    """Move the checked files from ``tmp`` to ``dest`` (over what is there)."""
    moved = []
    for rel in rels:
        target = dest.joinpath(*rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp.joinpath(*rel.split("/")), target)
        moved.append(target)
    return moved


# ---------------------------------------------------------------------------- CLI
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore",
        help="unpack a result archive (snakemake archive) into this checkout",
        description="Unpack a result archive made by `snakemake archive` into this checkout "
        "and check every file against the archive's manifest. Restored files are stamped "
        "now, in the order they were made, so Snakemake reruns no measurement. With "
        "--redraw the figures are left out: `snakemake --cores 1 figures --configfile "
        "<results_dir>/archive/config.yaml` draws them again from the restored summaries "
        "(docs/LEGACY.md).",
    )
    p.add_argument("archive", type=Path, help="archives/<name>.tar.gz")
    p.add_argument("--into", type=Path, default=Path("."), help="checkout root (default .)")
    p.add_argument("--force", action="store_true", help="restore over a non-empty results dir")
    p.add_argument(
        "--redraw", action="store_true", help="leave the figures out: `figures` draws them again"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        dest = restore(args.archive, args.into, args.force, args.redraw)
    except ArchiveError as e:
        raise SystemExit(f"spark-harness restore: {e}") from e
    cfg = dest / META_DIR / "config.yaml"
    print(
        f"restored {dest}\nredraw the figures without any load:\n"
        f"  snakemake --cores 1 figures --configfile {cfg}"
    )
    return 0
