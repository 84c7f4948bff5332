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
import sys
import tarfile
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from spark_harness import __version__
from spark_harness.files import atomic_writer

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
    plan = {**dict(config), "track": track}
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
    check it against the manifest and stamp it now; return the results directory."""
    archive, into = Path(archive), Path(into)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            root, manifest = _unpack(tar, archive, into, force, redraw)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
        raise ArchiveError(f"{archive}: not a readable result archive: {e}") from e
    dest = into / root
    restored = []
    for rel, facts in manifest["files"].items():
        if redraw and rel.startswith(f"{FIGURES}/"):
            continue
        path = dest / rel
        if not path.is_file() or _sha256(path) != facts["sha256"]:
            raise ArchiveError(f"{archive}: {root}/{rel} is missing or differs from the manifest")
        restored.append(path)
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


def _unpack(
    tar: tarfile.TarFile, archive: Path, into: Path, force: bool, redraw: bool
) -> tuple[str, dict[str, Any]]:
    """Extract (files and directories only, inside ``into``; no figures if ``redraw``);
    return the results folder's name and the manifest."""
    roots = {m.name.split("/", 1)[0] for m in tar.getmembers()}
    if len(roots) != 1:
        raise ArchiveError(f"{archive}: expected one results folder, found {sorted(roots)}")
    root = roots.pop()
    meta = tar.extractfile(f"{root}/{META_DIR}/{MANIFEST}")
    if meta is None:
        raise ArchiveError(f"{archive}: no {META_DIR}/{MANIFEST}")
    manifest = json.loads(meta.read())
    dest = into / root
    if dest.exists() and any(dest.iterdir()) and not force:
        raise ArchiveError(f"{dest} exists and is not empty; pass --force to restore over it")
    skip = f"{root}/{FIGURES}/"
    members = [m for m in tar.getmembers() if not (redraw and m.name.startswith(skip))]
    tar.extractall(into, members=members, filter="data")
    return root, manifest


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
