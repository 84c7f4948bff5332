"""Result archives: made on one checkout, restored on a fresh one, figures redrawn
without any load (real Snakemake on temporary copies of the repository)."""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from spark_harness.archive import ArchiveError, restore
from spark_harness.plan import Plan
from spark_harness_testkit.synthetic import write_plan
from tests.conftest import copy_workflow
from tests.workflow.smk import snakemake

pytestmark = [pytest.mark.workflow, pytest.mark.slow]
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


def test_restored_on_a_fresh_clone_nothing_reruns(archived: Path, tmp_path: Path) -> None:
    root = fresh_clone(tmp_path / "clone")
    dest = restore(archived, root)
    cfg = str((dest / "archive" / "config.yaml").relative_to(root))
    assert yaml.safe_load((dest / "archive" / "config.yaml").read_text())["track"] == "v2.5"
    dry = snakemake(root, "-n", "H_all", "--configfile", cfg)
    assert dry.returncode == 0, dry.out[-4000:]
    assert "Nothing to be done" in dry.out, dry.out[-4000:]


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


def test_restore_refuses_overwrite_and_corruption(archived: Path, tmp_path: Path) -> None:
    restore(archived, tmp_path)
    with pytest.raises(ArchiveError, match="not empty"):
        restore(archived, tmp_path)
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(archived.read_bytes()[:200])
    with pytest.raises(ArchiveError, match="not a readable"):
        restore(bad, tmp_path / "other")
