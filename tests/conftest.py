"""Shared fixtures: a temporary copy of the repository to run Snakemake in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


def copy_workflow(dest: Path) -> Path:
    """Copy what Snakemake needs (not results, venvs or caches) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for d in ("config", "workflow", "inputs", "profiles"):
        if (REPO / d).exists():
            shutil.copytree(REPO / d, dest / d, symlinks=True)
    # workflow/schemas links into the package source; point it at the real directory
    link = dest / "workflow" / "schemas"
    if link.is_symlink():
        link.unlink()
        shutil.copytree(REPO / "src" / "spark_harness" / "schemas", link)
    return dest
