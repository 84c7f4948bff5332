"""Snakemake's local executor polls a point's jobs in whole seconds; make its steps short.

A point is a service group (server, sidecar, load generator; workflow/rules/serve.smk).
Snakemake 9's local executor waits for the services' files before it starts the load
generator in steps of one second (``snakemake.io.wait_for_files``), and waits for the
group's jobs to finish in steps of one second, sleeping once more after the last one has
finished (``LocalExecutor.run_group_job``). Measured on the 2-core VM (a 6 s point of
the demo plan): the load generator started 1.0 s after its services and the services
were stopped 1.5 s after it exited, about 2 s of each point's 6 s spent waiting on the
clock (benchmarks/README.md, "Stacks"). Both loops sleep through ``time.sleep`` of their
own module; :func:`quicken` gives those two modules a ``time`` whose sleeps last at most
:data:`POLL_S`, nothing else changed (each step only checks a future or a file's
existence). On a cluster (the SLURM profile) the same file wait runs on the submitting
host after each job, now in 50 ms steps: a few more ``stat`` calls, nothing more.

If a Snakemake release reorganises these modules, :func:`quicken` patches nothing and
says so (the demo is slower, never wrong); ``tests/test_workflow_polling.py`` notices.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

#: the longest step of Snakemake's waits for a point's files and jobs
POLL_S = 0.05
#: the modules whose ``time.sleep`` steps are the waits above
MODULES = ("snakemake.io", "snakemake.executors.local")


class _ShortSleeps:
    """The ``time`` module as the patched modules see it: sleeps capped at POLL_S."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, POLL_S))


def quicken() -> list[str]:
    """Shorten the steps of Snakemake's waits for a point; the modules patched."""
    patched = []
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(mod, "time", None) is time:
            mod.time = _ShortSleeps()  # type: ignore[attr-defined]
            patched.append(name)
        elif isinstance(getattr(mod, "time", None), _ShortSleeps):
            patched.append(name)
    return patched
