"""The SLURM test cluster as a fixture: used when it is up, or set up when asked.

Tests marked ``slurm`` request ``slurm_cluster``. They run when the single-node test
cluster of ``slurm-cluster.sh`` is up, or when ``SPARK_HARNESS_SLURM=up`` asks this
fixture to bring it up (root; it is brought down again at the end); else they skip.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.cluster.slurm import SCRIPT, cluster_is_up, node_cpus


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[int]:
    """The test cluster's node core count, with the cluster up for the session."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="needs the '.[cluster]' extra")
    started = False
    if not cluster_is_up():
        if os.environ.get("SPARK_HARNESS_SLURM") != "up":
            pytest.skip(
                "SLURM test cluster not up: run `tests/cluster/slurm-cluster.sh up` (root) "
                "or set SPARK_HARNESS_SLURM=up"
            )
        subprocess.run(["bash", str(SCRIPT), "up"], check=True, timeout=900)
        started = True
    yield node_cpus()
    if started:
        subprocess.run(["bash", str(SCRIPT), "down"], check=False, timeout=120)
