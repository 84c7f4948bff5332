"""The hypothesis registry: one entry per hypothesis, code resolved by reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spark_harness import registry
from spark_harness.registry import BUILTIN, Figure, Hypothesis, RegistryError


def test_every_builtin_entry_resolves_its_evaluator_and_figures():
    for h in BUILTIN:
        assert callable(h.evaluate()), h.id
        for f in h.figures:
            assert callable(registry.resolve(f.draw)), (h.id, f.name)


def test_ids_are_unique_and_tables_follow_the_figure_names():
    assert len({h.id for h in BUILTIN}) == len(BUILTIN)
    h9 = registry.lookup("H9")
    assert h9.tables == ("fig_replay_ttft_by_mode.csv", "fig_replay_pairs.csv")
    assert registry.lookup("H2B").report_category == "H2B"


def test_an_unknown_id_or_a_bad_reference_is_an_error_naming_what_is_known():
    with pytest.raises(
        RegistryError, match=r"no hypothesis 'H42' in the v3 plan \(known: H0, H1, H2A"
    ):
        registry.lookup("H42")
    with pytest.raises(RegistryError, match=r"unknown plan track 'v4' \(have: v3, v2.5\)"):
        registry.load("v4")
    with pytest.raises(RegistryError, match="not a 'module:attribute' reference"):
        registry.resolve("no_colon")
    with pytest.raises(RegistryError, match="nowhere"):
        registry.resolve("spark_harness.plots:nowhere")


def test_the_legacy_track_comes_from_behind_its_boundary():
    legacy = registry.load("v2.5")
    assert list(legacy) == ["H0", "H1", "H2", "H3", "H4", "H5", "H6", "H7", "H8"]
    assert legacy["H0"] is registry.lookup("H0")  # the v3 rule unchanged
    assert legacy["H2"].evaluator.startswith("spark_harness.legacy.")
    for h in legacy.values():
        assert callable(h.evaluate()) and all(callable(registry.resolve(f.draw)) for f in h.figures)


def test_comparisons_are_those_whose_both_sides_are_in_the_plan():
    assert [c.name for c in registry.comparisons(["H2A", "H2B", "H4A"])] == ["H2_p99_vs_context"]
    assert registry.comparisons(["H0"]) == []
    for c in registry.COMPARISONS:
        a, b = (registry.lookup(h) for h in c.of)
        assert c.table in a.tables and c.table in b.tables, c.name


def test_a_plugin_adds_entries_and_may_not_redefine_one(monkeypatch):
    class EntryPoint:
        name, value = "toy", "toy_module"

        def __init__(self, entries):
            self.entries = entries

        def load(self):
            return type("Module", (), {"HYPOTHESES": self.entries})

    toy = Hypothesis("H10", "toy", ("A",), "toy:evaluate", (Figure("x", "toy:x"),))
    for entries, error in (([toy], None), ([BUILTIN[0]], "H0 is already registered")):
        monkeypatch.setattr(registry, "entry_points", lambda group, e=entries: [EntryPoint(e)])
        registry.load.cache_clear()
        try:
            if error:
                with pytest.raises(RegistryError, match=error):
                    registry.load()
            else:
                assert registry.lookup("H10").tables == ("fig_x.csv",)
        finally:
            registry.load.cache_clear()


def test_no_v3_module_imports_the_legacy_package():
    """The legacy boundary: only the registry names it, and only as a string."""
    src = Path(registry.__file__).parent
    for path in src.rglob("*.py"):
        if "legacy" in path.relative_to(src).parts:
            continue
        text = path.read_text()
        assert "import spark_harness.legacy" not in text, path
        assert "from spark_harness.legacy" not in text, path
    code = (
        "import sys, spark_harness.analysis.hypotheses, spark_harness.plots.render,"
        " spark_harness.verdict_table; spark_harness.registry.load();"
        " print(sorted(m for m in sys.modules if m.startswith('spark_harness.legacy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
