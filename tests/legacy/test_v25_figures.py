"""The v2.5 figures: names known without matplotlib, each drawn from its evaluator's table."""

from __future__ import annotations

from pathlib import Path

from spark_harness import plots
from spark_harness.plots import draw
from spark_harness.registry import load
from tests.legacy.test_v25_evaluators import H2_CFG, _paging_points, _verdict, _write


def test_names_come_from_the_legacy_registry() -> None:
    assert {h: e.figure_names for h, e in load("v2.5").items()}["H4"] == ("p99_vs_qos",)
    assert plots.figure_names("H2", "v2.5") == ["p99_vs_pressure"]
    assert plots.figure_names("H2") == []  # no v3 hypothesis is called H2
    assert "p99_vs_pressure.png" in plots.files("H2", [("P", "mem-64")], "v2.5")


def test_h2_and_h3_figures_draw_from_their_summaries(tmp_path: Path) -> None:
    src = _write(tmp_path, "H2", "P", _paging_points(knee=True))
    _verdict(tmp_path, "H2", H2_CFG, {("H2", "P"): src})
    _verdict(tmp_path, "H3", {"title": "H3", "analytical": {"from": ["H2"]}}, {("H2", "P"): src})
    for hyp in ("H2", "H3"):
        out = tmp_path / "figures" / hyp
        written = draw(hyp, tmp_path / "summary" / hyp, out, {"P": src}, [], track="v2.5")
        expected = {out / f for f in plots.files(hyp, [], "v2.5")}
        assert set(written) == expected
        assert all(p.stat().st_size > 0 for p in written)
    table = (tmp_path / "figures" / "H2" / "p99_vs_pressure.csv").read_text().splitlines()
    assert table[0].startswith("hyp,stack,point,rep,x") and len(table) == 1 + 4 * 3
