"""Hostile result archives for the restore tests and the restore fuzz benchmark.

:func:`members` is a Hypothesis strategy of tar members (links, names, types, sizes)
and manifests; :func:`path_max_escape` is the PATH_MAX symlink-chain archive that gets
past ``tarfile``'s ``data`` filter on Pythons before 3.11.13 / 3.12.11 / 3.13.4.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

MANIFEST = "archive/manifest.json"


@dataclass
class Member:
    """One tar member: ``kind`` is a ``tarfile`` type (REGTYPE, SYMTYPE, LNKTYPE, ...)."""

    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def write(out: Path, members: list[Member]) -> Path:
    """Write ``members`` as a gzip tar at ``out`` (exactly as given: no checks)."""
    with tarfile.open(out, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type = m.kind
            info.linkname = m.linkname
            info.mode = 0o755 if m.kind == tarfile.DIRTYPE else 0o644
            if m.kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(m.data)
            for k, v in m.extra.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(m.data) if info.size else None)
    return out


def manifest(files: dict[str, bytes], **override: object) -> Member:
    """A manifest member listing ``files`` (path under the root -> content)."""
    listed = {
        rel: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for rel, data in files.items()
    }
    body = {"format": 1, "files": listed, **override}
    return Member(MANIFEST, data=json.dumps(body).encode())


def valid(root: str = "results", files: dict[str, bytes] | None = None) -> list[Member]:
    """The members of a well-formed archive of ``files`` (by default one run) under
    ``root``, its manifest naming ``root`` as its ``results_dir``, as ``create`` does."""
    files = files or {"raw/H0/A/p/r0/run.json": b'{"outcome": "ok"}\n'}
    return [Member(f"{root}/{rel}", data=data) for rel, data in files.items()] + [
        _under(root, manifest(files, results_dir=root))
    ]


def _under(root: str, m: Member) -> Member:
    m.name = f"{root}/{m.name}"
    return m


def path_max_escape(root: str = "results", up: int = 2) -> list[Member]:
    """Members that make ``<root>/escape`` a link ``up`` levels above ``root``'s
    parent through a symlink chain longer than PATH_MAX (``os.path.realpath`` gives up
    on it, so the ``data`` filter thinks it stays inside), then write ``escape/pwned``."""
    comp, steps = "d" * 247, "abcdefghijklmnop"
    out: list[Member] = [_under(root, manifest({}, results_dir=root))]
    path = root
    for s in steps:
        out.append(Member(f"{path}/{comp}", tarfile.DIRTYPE))
        out.append(Member(f"{path}/{s}", tarfile.SYMTYPE, linkname=comp))
        path = f"{path}/{comp}"
    link = "/".join(steps) + "/" + "l" * 254
    out.append(Member(f"{root}/{link}", tarfile.SYMTYPE, linkname="../" * len(steps)))
    out.append(Member(f"{root}/escape", tarfile.SYMTYPE, linkname=link + "/.." * up))
    out.append(Member(f"{root}/escape/pwned", data=b"pwned\n"))
    return out


_PART = st.sampled_from(
    ["results", "raw", "run.json", "archive", "manifest.json", ".", "..", ".git", "", "a b"]
) | st.text(min_size=1, max_size=8)
_NAME = st.lists(_PART, min_size=1, max_size=5).map("/".join) | st.sampled_from(
    ["/etc/passwd", "/tmp/x", "../x", "results/../../x", "results/archive/manifest.json"]
)
_KINDS = ["REGTYPE", "DIRTYPE", "SYMTYPE", "LNKTYPE", "FIFOTYPE", "CHRTYPE", "BLKTYPE", "CONTTYPE"]
_KIND = st.sampled_from([getattr(tarfile, k) for k in _KINDS])
_MEMBER = st.builds(
    Member, name=_NAME, kind=_KIND, data=st.binary(max_size=32), linkname=_NAME | st.just("")
)
_MANIFEST_BODY = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"[]", b"{}", b'{"files": []}', b'{"files": {"/etc/passwd": {}}}']),
    st.dictionaries(
        _NAME, st.fixed_dictionaries({"bytes": st.integers(), "sha256": st.text()})
    ).map(lambda files: json.dumps({"files": files, "results_dir": "results"}).encode()),
)


@st.composite
def members(draw: st.DrawFn) -> list[Member]:
    """A list of members: often a valid archive with hostile members mixed in."""
    base = draw(st.sampled_from([[], valid(), valid(".git"), path_max_escape()]))
    extra = draw(st.lists(_MEMBER, max_size=6))
    if draw(st.booleans()):
        extra.append(Member("results/" + MANIFEST, data=draw(_MANIFEST_BODY)))
    out = [*base, *extra]
    return draw(st.permutations(out)) if draw(st.booleans()) else out
