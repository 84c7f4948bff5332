"""Snakemake's one-second waits for a point's services and jobs are shortened."""

from __future__ import annotations

import importlib
import time

import pytest

from spark_harness import workflow_polling
from spark_harness.workflow_polling import MODULES, POLL_S, quicken


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each patched module gets its own ``time`` back after the test."""
    for name in MODULES:
        mod = importlib.import_module(name)
        monkeypatch.setattr(mod, "time", time)


def test_the_installed_snakemake_has_both_waits_shortened(restored: None) -> None:
    # a Snakemake release that moves these waits fails here, not silently in the demo
    assert quicken() == list(MODULES)
    assert quicken() == list(MODULES)  # a second call (a second Snakefile) is harmless
    for name in MODULES:
        t = importlib.import_module(name).time
        assert t is not time and t.monotonic is time.monotonic and t.time is time.time


def test_sleeps_are_capped_and_nothing_else_changes(
    restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    quicken()
    local = importlib.import_module("snakemake.executors.local")
    local.time.sleep(1)  # the executor's step while a point's jobs run
    local.time.sleep(0.01)
    assert slept == [POLL_S, 0.01]


def test_a_module_without_the_wait_is_left_alone(
    restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workflow_polling, "MODULES", ("json", "no.such.module"))
    assert quicken() == []
    assert not hasattr(importlib.import_module("json"), "time")
