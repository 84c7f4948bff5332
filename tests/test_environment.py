"""environment.yml installs what pyproject.toml declares, and the extras do their job."""

from __future__ import annotations

import tomllib

import polars as pl
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

#: the extras environment.yml includes besides the dependencies
EXTRAS = ("pandas", "notebook")
#: conda-forge's name where it is not the PyPI name (matplotlib without a Qt backend)
CONDA_NAMES = {"matplotlib": "matplotlib-base"}
#: conda-only entries: the interpreter and the installer of the pip section
CONDA_ONLY = {"python", "pip"}


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def environment() -> dict:
    return yaml.safe_load((REPO / "environment.yml").read_text())


def declared() -> dict[str, Requirement]:
    """pyproject.toml's dependencies and the extras environment.yml installs, by name."""
    project = pyproject()
    reqs = [*project["dependencies"]]
    for extra in EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return {canonicalize_name(r.name): r for r in map(Requirement, reqs)}


def listed() -> tuple[dict[str, Requirement], dict[str, Requirement], list[str]]:
    """environment.yml's conda packages (by their PyPI name), pip packages, pip lines."""
    conda: dict[str, Requirement] = {}
    pip_lines: list[str] = []
    pypi_name = {canonicalize_name(c): p for p, c in CONDA_NAMES.items()}
    for dep in environment()["dependencies"]:
        if isinstance(dep, dict):
            pip_lines = dep["pip"]
            continue
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        if name not in CONDA_ONLY:
            req.name = pypi_name.get(name, name)
            conda[canonicalize_name(req.name)] = req
    options = [line for line in pip_lines if not line.startswith("-")]  # -e .
    pip = {canonicalize_name(r.name): r for r in map(Requirement, options)}
    return conda, pip, pip_lines


def test_environment_installs_every_declared_dependency_at_its_version():
    conda, pip, _ = listed()
    want = declared()
    assert not set(conda) & set(pip), "a package both from conda-forge and pip"
    got = {**conda, **pip}
    assert sorted(got) == sorted(want)
    for name, req in want.items():
        assert got[name].specifier == req.specifier, name
        assert got[name].extras == req.extras, name


def test_environment_is_conda_forge_and_installs_the_project_itself():
    env = environment()
    assert env["channels"] == ["conda-forge", "nodefaults"]
    _, pip, pip_lines = listed()
    assert "-e ." in pip_lines
    # only what conda-forge lacks comes from pip (Snakemake is on bioconda)
    assert set(pip) == {"snakemake"}
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert (
        Requirement(python).specifier
        == Requirement("python" + pyproject()["requires-python"]).specifier
    )


def test_pandas_extra_gives_polars_its_to_pandas():
    """The `test` extra includes `pandas`: without pyarrow this raises ModuleNotFoundError."""
    df = pl.DataFrame({"ttft_ms": [1.5, 2.5]}).to_pandas()
    assert list(df["ttft_ms"]) == [1.5, 2.5]
