"""The measuring client: schedules, HTTP/SSE, per-request records.

``run_load`` is what ``measure.py`` calls for one point; the modules below are usable
on their own (``schedule``, ``sse``, ``stream``, ``record`` are pure functions). The
calibration server the tests and benchmarks check the client against is the test kit's
``groundtruth`` (never imported here).

The names below load on first use: the recorder process (:mod:`.recorder`) imports
``record`` and ``journal`` only, without the HTTP client's libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spark_harness.loadgen.journal import Journal
    from spark_harness.loadgen.runner import (
        LoadError,
        LoadSettings,
        phase_plans,
        run_load,
        run_standalone,
    )

_WHERE = {
    "Journal": "spark_harness.loadgen.journal",
    "LoadError": "spark_harness.loadgen.runner",
    "LoadSettings": "spark_harness.loadgen.runner",
    "phase_plans": "spark_harness.loadgen.runner",
    "run_load": "spark_harness.loadgen.runner",
    "run_standalone": "spark_harness.loadgen.runner",
}

__all__ = [
    "Journal",
    "LoadError",
    "LoadSettings",
    "phase_plans",
    "run_load",
    "run_standalone",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
