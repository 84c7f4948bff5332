"""The measuring client: schedules, HTTP/SSE, per-request records.

``run_load`` is what ``measure.py`` calls for one point; the modules below are usable
on their own (``schedule``, ``sse``, ``stream``, ``record`` are pure functions). The
calibration server the tests and benchmarks check the client against is the test kit's
``groundtruth`` (never imported here).
"""

from __future__ import annotations

from spark_harness.loadgen.runner import (
    LoadError,
    LoadSettings,
    phase_plans,
    run_load,
    run_standalone,
)

__all__ = [
    "LoadError",
    "LoadSettings",
    "phase_plans",
    "run_load",
    "run_standalone",
]
