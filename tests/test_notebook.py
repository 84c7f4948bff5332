"""notebooks/explore.ipynb runs top to bottom on a small run and reproduces its figures."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from spark_harness.analysis.u_work import write_u_work
from spark_harness_testkit.synthetic import World
from tests.plans import make_plan
from tests.plots.synth import REPO, Results

NOTEBOOK = REPO / "notebooks" / "explore.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    root = tmp_path_factory.mktemp("results")
    Results(root, make_plan({"H0": {}, "H2B": {}}), World(n_requests=150))
    for stack in ("A", "B"):  # as the workflow's u_work rule writes them
        write_u_work(root / "ingest" / "H0" / stack, root / "summary/H0/u_work" / f"{stack}.json")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARK_HARNESS_RESULTS", str(root))
        NotebookClient(
            nb, timeout=120, resources={"metadata": {"path": str(NOTEBOOK.parent)}}
        ).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def test_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_runs_and_reproduces_the_summary_from_parquet(executed):
    assert not [o for o in outputs(executed) if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs(executed) if o.output_type == "stream")
    assert "points compared: 10; max |notebook - summary.csv| = 0.000 ms" in text


def test_notebook_draws_its_two_figures(executed):
    images = [o for o in outputs(executed) if "image/png" in o.get("data", {})]
    assert len(images) == 2
