"""Result archives: made on one checkout, restored on a fresh one, figures redrawn
without any load (real Snakemake on temporary copies of the repository); and restore
of hostile archives (docs/SECURITY.md): nothing written outside the target, nothing
but a results tree written inside it, no traceback."""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from spark_harness import archive as archive_mod
from spark_harness.archive import ArchiveError, restore
from spark_harness.plan import Plan
from spark_harness_testkit import archives as hostile
from spark_harness_testkit.archives import Member, valid
from spark_harness_testkit.synthetic import write_plan
from tests.conftest import copy_workflow
from tests.workflow.smk import snakemake

slow = pytest.mark.slow
workflow = pytest.mark.workflow
RESULTS = "results-v2.5"
MEASURING = ("server_up", "telemetry_sidecar", "loadgen")


def small_v25(root: Path) -> dict:
    cfg = yaml.safe_load((root / "config" / "plan_v2.5.yaml").read_text())
    cfg["hypotheses"] = {h: cfg["hypotheses"][h] for h in ("H0", "H2", "H3")}
    cfg["archive"] = {"name": "demo"}
    (root / "config" / "small.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def fresh_clone(dest: Path) -> Path:
    """A checkout as `git clone` leaves it: no results, no .snakemake, every file new."""
    root = copy_workflow(dest)
    now = time.time()
    for p in root.rglob("*"):
        os.utime(p, (now, now), follow_symlinks=False)
    return root


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_workflow(tmp_path_factory.mktemp("made"))
    cfg = small_v25(root)
    # measured runs stand in as synthetic raw runs (spark_harness_testkit.synthetic): no load here
    write_plan(Plan(cfg, base_dir=root), root / RESULTS)
    made = snakemake(root, "archive", "--configfile", "config/small.yaml")
    assert made.returncode == 0, made.out[-4000:]
    assert not any(made.planned(r) for r in MEASURING)
    return root / "archives" / "demo.tar.gz"


@workflow
@slow
def test_archive_holds_results_config_versions_and_manifest(archived: Path) -> None:
    with tarfile.open(archived) as tar:
        names = set(tar.getnames())
    meta = f"{RESULTS}/archive"
    assert {f"{meta}/config.yaml", f"{meta}/versions.json", f"{meta}/manifest.json"} <= names
    for part in ("raw/H2/P/mem-64/r0/run.json", "ingest/H0/A/points.parquet"):
        assert f"{RESULTS}/{part}" in names
    assert f"{RESULTS}/summary/H2/verdict.json" in names
    assert f"{RESULTS}/figures/H2/p99_vs_pressure.png" in names
    assert not any("/services/" in n or "/scratch/" in n for n in names)


@workflow
@slow
def test_restored_on_a_fresh_clone_nothing_reruns(archived: Path, tmp_path: Path) -> None:
    root = fresh_clone(tmp_path / "clone")
    dest = restore(archived, root)
    cfg = str((dest / "archive" / "config.yaml").relative_to(root))
    assert yaml.safe_load((dest / "archive" / "config.yaml").read_text())["track"] == "v2.5"
    dry = snakemake(root, "-n", "H_all", "--configfile", cfg)
    assert dry.returncode == 0, dry.out[-4000:]
    assert "Nothing to be done" in dry.out, dry.out[-4000:]


@workflow
@slow
def test_redraw_rebuilds_figures_from_the_archive_without_load(
    archived: Path, tmp_path: Path
) -> None:
    root = fresh_clone(tmp_path / "clone")
    dest = restore(archived, root, redraw=True)
    assert not (dest / "figures").exists()
    cfg = str((dest / "archive" / "config.yaml").relative_to(root))
    dry = snakemake(root, "-n", "figures", "--configfile", cfg)
    assert dry.returncode == 0, dry.out[-4000:]
    assert not any(dry.planned(r) for r in (*MEASURING, "ingest", "summary")), dry.out[-4000:]
    assert dry.planned("figures_H2")
    real = snakemake(root, "figures", "--configfile", cfg)
    assert real.returncode == 0, real.out[-4000:]
    assert not any(real.planned(r) for r in MEASURING)
    assert (dest / "figures" / "H2" / "p99_vs_pressure.png").stat().st_size > 0


@workflow
@slow
def test_restore_refuses_overwrite_and_corruption(archived: Path, tmp_path: Path) -> None:
    restore(archived, tmp_path)
    with pytest.raises(ArchiveError, match="not empty"):
        restore(archived, tmp_path)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(archived.read_bytes()[:200])
    with pytest.raises(ArchiveError, match="not a readable"):
        restore(bad, tmp_path / "other")


# ------------------------------------------------------------------ hostile archives
def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under ``root`` (links not followed) with its mode and content."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else b""
        out[str(p.relative_to(root))] = (st.st_mode, data)
    return out


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout with a Snakefile and a .git to protect, inside a folder to watch."""
    root = tmp_path / "watched" / "checkout"
    (root / ".git" / "hooks").mkdir(parents=True)
    (root / "Snakefile").write_text("# the checkout's own\n")
    return root


def manifest(root: str, files: dict[str, bytes]) -> Member:
    """The manifest of ``files`` under ``root``, with its ``results_dir`` as create
    writes it."""
    return Member(f"{root}/{hostile.MANIFEST}", data=hostile.manifest(files, results_dir=root).data)


def refused(tmp_path: Path, members: list[Member], into: Path, force: bool = False) -> str:
    """Restore ``members`` into ``into``: it must raise ArchiveError and change nothing
    in the watched folder (so nothing outside ``into`` and nothing inside it)."""
    watched = tmp_path / "watched"
    before = tree(watched)
    with pytest.raises(ArchiveError) as e:
        restore(hostile.write(tmp_path / "a.tar.gz", members), into, force=force)
    assert tree(watched) == before
    return str(e.value)


def test_restore_of_a_valid_archive_writes_the_files(tmp_path: Path, checkout: Path) -> None:
    dest = restore(hostile.write(tmp_path / "a.tar.gz", valid()), checkout)
    run = dest / "raw/H0/A/p/r0/run.json"
    assert run.read_bytes() == b'{"outcome": "ok"}\n'
    assert run.stat().st_mtime > time.time() - 60  # stamped now, before the rename
    assert not list(checkout.glob(".restore-*"))


def test_files_made_in_one_second_keep_their_order(tmp_path: Path, checkout: Path) -> None:
    """A summary and the figure drawn from it in the same second: restored, the figure
    is still the newer (with whole seconds they tied, and the figure, first by name, came
    out older: Snakemake redrew it on the restored tree)."""
    results = tmp_path / "made" / "results"
    files = {
        "raw/H0/A/p/r0/run.json": 100.25,
        "summary/H3/summary.csv": 100.5,
        "figures/H3/p99.png": 100.75,
    }
    for rel, mtime in files.items():
        path = results / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)
        os.utime(path, (1_700_000_000 + mtime,) * 2)
    out = tmp_path / "a.tar.gz"
    archive_mod.create(results, {"results_dir": "results"}, "main", out, "t")
    dest = restore(out, checkout)
    mtimes = {rel: (dest / rel).stat().st_mtime_ns for rel in files}
    assert sorted(files, key=mtimes.__getitem__) == list(files)


def test_path_max_symlink_chain_cannot_escape(tmp_path: Path, checkout: Path) -> None:
    # on 3.11.7 tarfile's data filter lets this chain write watched/pwned
    msg = refused(tmp_path, hostile.path_max_escape(up=2), checkout)
    assert "not a regular file or directory" in msg
    assert not (tmp_path / "watched" / "pwned").exists()


@pytest.mark.parametrize("root", [".", "..", ".git", ""])
def test_top_folder_name_is_validated(tmp_path: Path, checkout: Path, root: str) -> None:
    members = valid(root)
    members.append(Member(f"{root}/Snakefile", data=b"evil"))
    members.append(Member(f"{root}/hooks/post-checkout", data=b"evil"))
    refused(tmp_path, members, checkout, force=True)


@pytest.mark.parametrize(
    "member",
    [
        Member("results/raw/link", tarfile.SYMTYPE, linkname="run.json"),  # even inside
        Member("results/raw/hard", tarfile.LNKTYPE, linkname="results/archive/manifest.json"),
        Member("results/raw/fifo", tarfile.FIFOTYPE),
        Member("results/raw/../../x", data=b""),
        Member("results/raw/unlisted.json", data=b"{}"),
    ],
    ids=["symlink", "hardlink", "fifo", "dotdot", "unlisted"],
)
def test_every_member_is_checked_before_anything_is_written(
    tmp_path: Path, checkout: Path, member: Member
) -> None:
    refused(tmp_path, [*valid(), member], checkout)


@pytest.mark.parametrize(
    "body",
    [None, b"not json", b"[1, 2]", b'{"files": []}', b"[" * 100_000],
    ids=["missing", "malformed", "list", "files-list", "deep"],
)
def test_bad_manifest_is_a_clear_error(tmp_path: Path, checkout: Path, body: bytes | None) -> None:
    members = [Member("results/raw/x.json", data=b"{}")]
    if body is not None:
        members.append(Member("results/archive/manifest.json", data=body))
    assert "manifest" in refused(tmp_path, members, checkout)


def test_manifest_paths_are_confined(tmp_path: Path, checkout: Path) -> None:
    outside = tmp_path / "watched" / "victim"
    outside.write_bytes(b"x")
    members = valid()
    members[-1] = manifest(
        "results", {str(outside): b"x", "raw/H0/A/p/r0/run.json": b'{"outcome": "ok"}\n'}
    )
    assert "plain relative path" in refused(tmp_path, members, checkout)


def test_a_failed_check_leaves_nothing(tmp_path: Path, checkout: Path) -> None:
    members = valid()
    members[0].data = b'{"outcome": "xx"}\n'  # the listed size, not the listed hash
    assert "differs from the manifest" in refused(tmp_path, members, checkout)


def test_restore_cli_gives_no_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = hostile.write(tmp_path / "a.tar.gz", [Member("results/raw/x.json", data=b"{}")])
    parser = argparse.ArgumentParser()
    archive_mod.register(parser.add_subparsers())
    args = parser.parse_args(["restore", str(bad), "--into", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match=r"spark-harness restore: .*manifest"):
        args.func(args)


@settings(
    max_examples=int(os.environ.get("RESTORE_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(members=hostile.members())
def test_fuzzed_archives_never_escape_or_crash(tmp_path: Path, members: list[Member]) -> None:
    """Generated archives (links, names, types, manifests): ArchiveError or a restore
    inside the target, nothing created or changed outside it, no other exception."""
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    into = case / "checkout"
    into.mkdir()
    (case / "outside").write_text("keep")
    archive = hostile.write(case / "a.tar.gz", members)
    before = tree(case)
    try:
        dest = restore(archive, into, force=True)
    except ArchiveError:
        assert tree(case) == before
        return
    assert dest.parent == into
    changed = {k for k, v in tree(case).items() if before.get(k) != v}
    assert all(k.startswith("checkout/") for k in changed), changed


def test_no_secret_travels_in_an_archive(tmp_path: Path) -> None:
    results = tmp_path / "results"
    (results / "raw/H0/A/p/r0").mkdir(parents=True)
    (results / "raw/H0/A/p/r0/run.json").write_text("{}")
    config = {"stacks": {"A": {"sim": {"api_key": "k3y", "max_num_tokens": 64}}}}
    archive_mod.create(results, config, "main", tmp_path / "a.tar.gz", "a")
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        fh = tar.extractfile("results/archive/config.yaml")
        assert fh is not None
        plan = yaml.safe_load(fh.read())
    assert plan["stacks"]["A"]["sim"] == {"api_key": "<redacted>", "max_num_tokens": 64}


# ---------------------------------------------- only a results tree, whole or not at all
@pytest.mark.parametrize("root", ["spark_harness", "yaml", "snakemake", "polars"])
def test_a_top_folder_that_would_shadow_a_module_is_refused(
    tmp_path: Path, checkout: Path, root: str
) -> None:
    # the audit's archive: spark_harness/__init__.py, listed, shadowed the package
    files = {"__init__.py": b"import os\n"}
    members = [Member(f"{root}/__init__.py", data=files["__init__.py"]), manifest(root, files)]
    assert "importable module" in refused(tmp_path, members, checkout, force=True)
    assert "importable module" in refused(tmp_path, valid(root), checkout, force=True)


@pytest.mark.parametrize(
    "rel",
    ["__init__.py", "Snakefile", "rules/common.smk", "raw", "archive/hook.py", "services/x"],
)
def test_only_files_of_the_results_layout_are_restored(
    tmp_path: Path, checkout: Path, rel: str
) -> None:
    files = {"raw/H0/A/p/r0/run.json": b"{}", rel: b"evil"}
    msg = refused(tmp_path, valid("results", files), checkout)
    assert f"results/{rel} is not a result" in msg


@pytest.mark.parametrize("results_dir", ["results-v2.5", None])
def test_the_top_folder_is_the_manifests_results_dir(
    tmp_path: Path, checkout: Path, results_dir: str | None
) -> None:
    files = {"raw/H0/A/p/r0/run.json": b"{}"}
    body = hostile.manifest(files, **({"results_dir": results_dir} if results_dir else {}))
    members = [
        Member("results/raw/H0/A/p/r0/run.json", data=b"{}"),
        Member(f"results/{hostile.MANIFEST}", data=body.data),
    ]
    assert "results_dir" in refused(tmp_path, members, checkout)


def test_force_never_replaces_the_checkouts_own_folder(tmp_path: Path, checkout: Path) -> None:
    # the audit's archive: `workflow` holding rules/common.smk replaced the project's file
    (checkout / "workflow/rules").mkdir(parents=True)
    (checkout / "workflow/rules/common.smk").write_text("# the checkout's own\n")
    audit = valid("workflow", {"rules/common.smk": b"evil"})
    assert "not a result" in refused(tmp_path, audit, checkout, force=True)
    # a valid results layout under that name: the folder is still not a results tree
    msg = refused(tmp_path, valid("workflow"), checkout, force=True)
    assert "workflow/rules is not a result" in msg
    assert "not even with --force" in msg


def test_a_results_folder_holding_another_plans_results_is_named(
    tmp_path: Path, checkout: Path
) -> None:
    """Other plans nest their results under results/ (results/vllm-cpu): restore does
    not replace such a folder, and says what to move."""
    (checkout / "results" / "vllm-cpu" / "raw").mkdir(parents=True)
    msg = refused(tmp_path, valid(), checkout, force=True)
    assert "results/vllm-cpu is another plan's results folder inside it: move that out" in msg


def test_force_moves_a_results_tree_aside(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = checkout / "results"
    for rel in ("raw/H0/A/p/r0/run.json", "services/H0/endpoint.json", "scratch/x", "report.html"):
        (old / rel).parent.mkdir(parents=True, exist_ok=True)
        (old / rel).write_text(f"old {rel}")
    before = tree(old)
    archive = hostile.write(tmp_path / "a.tar.gz", valid())
    parser = argparse.ArgumentParser()
    archive_mod.register(parser.add_subparsers())
    args = parser.parse_args(["restore", str(archive), "--into", str(checkout), "--force"])
    assert args.func(args) == 0
    (aside,) = checkout.glob("results.replaced-*")
    assert str(aside) in capsys.readouterr().out
    assert tree(aside) == before  # nothing deleted
    assert sorted(p.name for p in old.iterdir()) == ["archive", "raw"]
    assert (old / "raw/H0/A/p/r0/run.json").read_bytes() == b'{"outcome": "ok"}\n'
    assert not list(checkout.glob(".restore-*"))


def test_an_empty_folder_is_replaced_without_force(tmp_path: Path, checkout: Path) -> None:
    (checkout / "results").mkdir()
    dest = restore(hostile.write(tmp_path / "a.tar.gz", valid()), checkout)
    assert (dest / "raw/H0/A/p/r0/run.json").is_file()
    assert not list(checkout.glob("results.replaced-*"))


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "force-over-results"])
def test_an_interrupted_restore_changes_nothing(
    tmp_path: Path, checkout: Path, monkeypatch: pytest.MonkeyPatch, existing: bool
) -> None:
    """Ctrl-C while the tree is staged: no half tree, no .restore-* folder left."""
    if existing:
        (checkout / "results/raw").mkdir(parents=True)
        (checkout / "results/raw/old.json").write_text("{}")

    def interrupt(files: list[Path]) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(archive_mod, "_stamp_now", interrupt)
    archive = hostile.write(tmp_path / "a.tar.gz", valid())
    before = tree(tmp_path / "watched")
    with pytest.raises(KeyboardInterrupt):
        restore(archive, checkout, force=existing)
    assert tree(tmp_path / "watched") == before


def sparse_header(name: str, size: int) -> bytes:
    """An old-GNU sparse member's header: ``size`` bytes of hole and no data block."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    info.mode = 0o644
    buf = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    buf[483:495] = b"%011o\0" % size  # realsize
    buf[148:156] = b" " * 8
    buf[148:155] = b"%06o\0" % sum(buf)
    return bytes(buf)


def test_a_sparse_member_is_refused(tmp_path: Path, checkout: Path) -> None:
    """The audit's bomb, smaller: a few hundred bytes that restored as a real file."""
    size = 1 << 20
    files = {"raw/H0/A/p/r0/run.json": b"{}", "raw/H0/A/p/r0/bomb.bin": bytes(size)}
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for m in valid("results", files):
            if m.name.endswith("bomb.bin"):
                assert tar.fileobj is not None
                tar.fileobj.write(sparse_header(m.name, size))
                tar.offset += tarfile.BLOCKSIZE
            else:
                info = tarfile.TarInfo(m.name)
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
    assert archive.stat().st_size < 1000
    before = tree(tmp_path / "watched")
    with pytest.raises(ArchiveError, match=r"bomb\.bin is a sparse file"):
        restore(archive, checkout, force=True)
    assert tree(tmp_path / "watched") == before


def test_an_archive_larger_than_the_free_space_is_refused(
    tmp_path: Path, checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = hostile.write(tmp_path / "a.tar.gz", valid())
    free = 100  # less the reserve, less than the run and the manifest
    monkeypatch.setattr(
        archive_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(free, 0, free)
    )
    before = tree(tmp_path / "watched")
    with pytest.raises(ArchiveError, match=rf"needs \d+ bytes, .* has {free} bytes free"):
        restore(archive, checkout)
    assert tree(tmp_path / "watched") == before


def test_hard_linked_results_are_archived_as_files(tmp_path: Path) -> None:
    """Two paths to one inode (`cp -al`) are two regular members, which restore takes."""
    results = tmp_path / "results"
    first, second = results / "raw/H0/A/p/r0", results / "raw/H0/A/p/r1"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    (first / "run.json").write_text('{"outcome": "ok"}')
    os.link(first / "run.json", second / "run.json")
    out = tmp_path / "a.tar.gz"
    archive_mod.create(results, {}, "main", out, "a")
    with tarfile.open(out) as tar:
        assert all(m.isreg() for m in tar.getmembers())
        member = tar.getmember("results/raw/H0/A/p/r1/run.json")
        assert member.size == 17
        assert member.mtime == pytest.approx((second / "run.json").stat().st_mtime)
    dest = restore(out, tmp_path / "checkout")
    assert (dest / "raw/H0/A/p/r1/run.json").read_text() == '{"outcome": "ok"}'
