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
against the manifest. It writes a results tree and nothing else (docs/SECURITY.md): the
top folder is the manifest's ``results_dir`` and no importable module's name, every file
lies in the layout above, and an existing folder is replaced (moved aside, never
deleted) only when it is a results tree itself. Snakemake compares modification times
(a ``script:`` rule's output is stale when its script is newer), and a fresh clone's
files are all new; so every restored file is stamped *now*, in the order the files were
made: the runs, tables and summaries are up to date for the checkout's code and no
measurement reruns. With
``--redraw`` the figures are left out, and ``snakemake --cores 1 figures --configfile
<results_dir>/archive/config.yaml`` draws them again from the restored summaries without
running any load (docs/LEGACY.md).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
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
from typing import IO, Any

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
#: What a results folder holds directly: only a folder of nothing else is replaced.
RESULT_ENTRIES = (*KEPT, META_DIR, REPORT, "services", "scratch")
#: Part of the free space a restore leaves free.
FREE_RESERVE = 0.10


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


def _add(tar: tarfile.TarFile, name: str, size: int, mtime: float, content: IO[bytes]) -> None:
    """Add a regular member built by hand: ``tar.add`` would store a second path to an
    inode as a hard link (which restore refuses) and the owner's names."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    tar.addfile(info, content)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    _add(tar, name, len(data), mtime, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    """Stream ``path`` as a regular member with its own size and modification time."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        _add(tar, name, st.st_size, st.st_mtime, fh)


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
    stamp = int(min(p.stat().st_mtime for p in files))
    with atomic_writer(Path(out), "wb") as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
        meta = f"{root}/{META_DIR}"
        _add_bytes(
            tar, f"{meta}/config.yaml", yaml.safe_dump(plan, sort_keys=False).encode(), stamp
        )
        _add_bytes(tar, f"{meta}/versions.json", json.dumps(versions(), indent=2).encode(), stamp)
        _add_bytes(tar, f"{meta}/{MANIFEST}", json.dumps(manifest, indent=2).encode(), stamp)
        for p in files:
            _add_file(tar, f"{root}/{p.relative_to(results)}", p)
    return manifest


def restore(
    archive: str | Path, into: str | Path = ".", force: bool = False, redraw: bool = False
) -> Path:
    """Unpack ``archive`` into the checkout ``into`` (without figures if ``redraw``),
    check it against the manifest and stamp it now; return the results directory.

    An archive is untrusted input (docs/SECURITY.md): every member is checked and
    confined before anything is written, and nothing reaches ``into`` unless every
    check passed (see :func:`_unpack`). With ``force`` an existing results tree is
    renamed aside to ``<results_dir>.replaced-<UTC time>``, never deleted.
    """
    return _restore(archive, into, force, redraw)[0]


def _restore(
    archive: str | Path, into: str | Path, force: bool, redraw: bool
) -> tuple[Path, Path | None]:
    """:func:`restore`, also returning where a replaced results tree went (the CLI
    tells the user)."""
    archive, into = Path(archive), Path(into)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            root, files = _checked_members(tar, archive)
            wanted = {
                r: f for r, f in files.items() if not (redraw and r.startswith(f"{FIGURES}/"))
            }
            dest = into / root
            _check_destination(dest, force)
            _check_space(archive, into, sum(m.size for m, _ in wanted.values()))
            into.mkdir(parents=True, exist_ok=True)
            return dest, _unpack(tar, archive, wanted, dest, force)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise ArchiveError(f"{archive}: not a readable result archive: {e}") from e


def _check_destination(dest: Path, force: bool) -> None:
    """ArchiveError unless ``dest`` is absent, empty, or (with ``force``) a results
    tree: a restore must never replace a checkout's own folder (``workflow``, ``src``)."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise ArchiveError(f"{dest} exists and is not a directory")
    if not dest.exists():
        return
    entries = sorted(p.name for p in dest.iterdir())
    foreign = [e for e in entries if e not in RESULT_ENTRIES]
    if foreign:
        nested = (dest / foreign[0] / "raw").is_dir() or (dest / foreign[0] / "summary").is_dir()
        why = (
            f"{dest / foreign[0]} is another plan's results folder inside it: move that out first"
            if nested
            else f"{dest / foreign[0]} is not a result"
        )
        raise ArchiveError(
            f"{dest} is not only a results folder ({why}): restore never replaces it, "
            "not even with --force"
        )
    if entries and not force:
        raise ArchiveError(
            f"{dest} exists and is not empty; pass --force to move it aside and restore"
        )


def _check_space(archive: Path, into: Path, need: int) -> None:
    """ArchiveError when the ``need`` bytes to write do not fit in the free space of
    ``into``'s filesystem less a reserve: a small archive can declare huge files."""
    where = next((p for p in (into, *into.parents) if p.exists()), into)
    free = shutil.disk_usage(where).free
    if need > free - int(free * FREE_RESERVE):
        raise ArchiveError(
            f"{archive}: restoring needs {need} bytes, {where} has {free} bytes free "
            f"(restore leaves {FREE_RESERVE:.0%} of it free)"
        )


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


def _shadows_module(name: str) -> bool:
    """Whether a folder ``name`` in the checkout root could shadow a module or package
    this interpreter imports (the workflow runs with the checkout root on its path).
    A namespace package (folders only, like the checkout's own ``results``) is not one."""
    if not name.isidentifier():
        return False
    try:
        spec = importlib.util.find_spec(name)
    except Exception:  # a finder that fails on the name cannot import it either
        return False
    return spec is not None and spec.origin is not None


def _in_layout(rel: str) -> bool:
    """Whether ``rel`` (a file's path under the results folder) is where a results
    tree keeps its files: under a KEPT folder, the report, or the archive's own files."""
    parts = rel.split("/")
    return rel == REPORT or rel in META_FILES or (len(parts) > 1 and parts[0] in KEPT)


def _checked_members(
    tar: tarfile.TarFile, archive: Path
) -> tuple[str, dict[str, tuple[tarfile.TarInfo, str | None]]]:
    """The results folder's name and each regular file (path under it -> member and
    its manifest SHA-256), after checking every member and the manifest: one top
    folder, validly named, named as the manifest's ``results_dir`` and shadowing no
    module; regular files (not sparse) and directories only; each file in the
    results layout and listed in the manifest with its size; every manifest path
    confined."""
    members = tar.getmembers()
    roots = {m.name.split("/", 1)[0] for m in members}
    if len(roots) != 1:
        raise ArchiveError(f"{archive}: expected one results folder, found {sorted(roots)}")
    root = roots.pop()
    if not _ROOT_NAME.fullmatch(root):
        raise ArchiveError(f"{archive}: {root!r} is not a valid results folder name")
    if _shadows_module(root):
        raise ArchiveError(
            f"{archive}: {root!r} is the name of an importable module: a folder of that "
            "name in the checkout would shadow it"
        )
    files: dict[str, tarfile.TarInfo] = {}
    for m in members:
        parts = _relative(m.name.rstrip("/") if m.isdir() else m.name, f"{archive}: member")
        if m.issparse():  # a few header bytes can declare a file of any size
            raise ArchiveError(f"{archive}: {m.name} is a sparse file")
        if not (m.isreg() or m.isdir()):
            raise ArchiveError(f"{archive}: {m.name} is not a regular file or directory")
        rel = "/".join(parts[1:])
        if m.isreg():
            if not rel or rel in files:
                raise ArchiveError(f"{archive}: {m.name} is not a file or appears twice")
            if not _in_layout(rel):
                raise ArchiveError(
                    f"{archive}: {m.name} is not a result (a results tree holds only "
                    f"{', '.join(KEPT)}, {REPORT} and {META_DIR})"
                )
            files[rel] = m
    manifest = _manifest(tar, archive, files)
    if manifest.get("results_dir") != root:
        raise ArchiveError(
            f"{archive}: the top folder {root!r} is not the manifest's results_dir "
            f"{manifest.get('results_dir')!r}"
        )
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
    files: Mapping[str, tuple[tarfile.TarInfo, str | None]],
    dest: Path,
    force: bool,
) -> Path | None:
    """Write the checked ``files`` into a temporary folder next to ``dest``, each
    checked against its SHA-256 as it is written, stamp them now and move the tree to
    ``dest`` with one rename when all passed; return where a replaced tree went.

    Files are written by hand, never by ``extractall``: only directories this function
    created lie on their paths, so no link in the archive can redirect a write. An
    interrupted restore leaves ``dest`` as it was; the temporary ``.restore-*`` folder
    goes on any exception (only a SIGKILL leaves it: .gitignore keeps it out of git).
    """
    tmp = Path(tempfile.mkdtemp(prefix=".restore-", dir=dest.parent))
    try:
        staged = tmp / dest.name  # made with the umask's mode, not mkdtemp's 0o700
        written = []
        for rel, (member, sha) in sorted(files.items()):
            path = staged.joinpath(*rel.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None  # a regular file
            h = hashlib.sha256()
            with src, open(path, "xb") as out:
                while chunk := src.read(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            # the archived time, to the nanosecond a PAX header keeps: files made in one
            # second keep their order (whole seconds made ties, and the stamp below then
            # ordered them by name: a figure older than its summary, redrawn)
            mtime = float(member.mtime)
            mtime = min(max(mtime, 0.0), 2.0**33) if math.isfinite(mtime) else 0.0
            t = round(mtime * 1e9)
            os.utime(path, ns=(t, t))
            if sha is not None and h.hexdigest() != sha:
                raise ArchiveError(f"{archive}: {dest.name}/{rel} differs from the manifest")
            written.append(path)
        _stamp_now(written)  # here: a rename keeps modification times
        return _move_into_place(staged, dest, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(staged: Path, dest: Path, force: bool) -> Path | None:
    """Rename ``staged`` to ``dest`` (an absent or empty folder) in one step, so no
    half tree is ever seen there; a non-empty ``dest`` (a results tree, checked again
    here: something may have written it during a long unpack) is first renamed aside to
    ``<name>.replaced-<UTC time>``, which is returned."""
    _check_destination(dest, force)
    aside = None
    if dest.is_dir() and any(dest.iterdir()):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        aside = dest.with_name(f"{dest.name}.replaced-{stamp}")
        if aside.exists():
            raise ArchiveError(f"{aside} exists: restore again in a second")
        os.rename(dest, aside)
    try:
        os.rename(staged, dest)
    except BaseException:
        if aside is not None:
            os.rename(aside, dest)
        raise
    return aside


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
    p.add_argument(
        "--force",
        action="store_true",
        help="move an existing results dir aside to <dir>.replaced-<UTC time> and restore",
    )
    p.add_argument(
        "--redraw", action="store_true", help="leave the figures out: `figures` draws them again"
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        dest, replaced = _restore(args.archive, args.into, args.force, args.redraw)
    except ArchiveError as e:
        raise SystemExit(f"spark-harness restore: {e}") from e
    if replaced is not None:
        print(f"moved the results that were at {dest} to {replaced}")
    cfg = dest / META_DIR / "config.yaml"
    print(
        f"restored {dest}\nredraw the figures without any load:\n"
        f"  snakemake --cores 1 figures --configfile {cfg}"
    )
    return 0
