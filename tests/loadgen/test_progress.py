"""Progress reporting: plain periodic lines when stderr is not a terminal."""

from __future__ import annotations

import io
import logging

import pytest

from spark_harness.loadgen import progress

from .conftest import spec


def test_plain_lines_in_logs(run_in_process, monkeypatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.05)
    caplog.set_level(logging.INFO, logger="spark_harness.loadgen")
    wl = {"kind": "fixed_context", "context_tokens": 8, "output_tokens": 2}
    run_in_process(spec(wl, {"kind": "closed", "users": 2}, load_s=0.3))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loadgen ")]
    assert len(lines) >= 3
    assert lines[0].startswith("loadgen phase load: sent ")
    assert lines[-1].startswith("loadgen phase done: sent ") and "errors 0" in lines[-1]
    assert any(r.getMessage().startswith("event stamps: ") for r in caplog.records)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal(run_in_process, monkeypatch) -> None:
    term = _Terminal()
    monkeypatch.setattr(progress.sys, "stderr", term)
    monkeypatch.setattr(progress, "BAR_REFRESH_S", 0.05)
    wl = {"kind": "fixed_context", "context_tokens": 8, "output_tokens": 2}
    run_in_process(spec(wl, {"kind": "closed", "users": 2}, load_s=0.3))
    shown = term.getvalue()
    assert "/0.3 s" in shown and "phase load: sent" in shown
