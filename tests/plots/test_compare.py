"""Stack A against Stack B on one chart (H2, H4, H8): both sides, their colours, the CSV."""

from __future__ import annotations

import polars as pl
import pytest

from spark_harness.plots import style
from spark_harness.plots.compare import draw, render
from spark_harness.registry import COMPARISONS


@pytest.mark.parametrize("c", COMPARISONS, ids=lambda c: c.name)
def test_both_stacks_are_drawn_on_one_chart_with_what_was_drawn(default_results, tmp_path, c):
    a, b = (default_results.summary(h) for h in c.of)
    with style.styled():
        fig, table = draw(c, a, b)
    assert sorted(table["hyp"].unique().to_list()) == sorted(c.of)
    assert set(table["stack"].unique().to_list()) == {"A", "B"}
    for h, s in zip(c.of, (a, b), strict=True):
        source = s.table(c.table)
        assert table.filter(pl.col("hyp") == h).height == source.height
    (ax,) = fig.axes
    drawn = {str(t.get_text()) for t in ax.get_legend().get_texts()}
    assert drawn == {f"Stack A ({c.of[0]})", f"Stack B ({c.of[1]})"}
    title = fig.get_suptitle()
    assert f"{c.of[0]}: Verdict: " in title and f"{c.of[1]}: Verdict: " in title
    files = [tmp_path / f"{c.name}.{ext}" for ext in ("png", "svg", "csv")]
    render(c, a.dir, b.dir, *files)
    assert files[0].read_bytes()[:4] == b"\x89PNG"
    assert pl.read_csv(files[2]).height == table.height


def test_a_side_without_rows_leaves_the_other_drawn(results_of):
    c = COMPARISONS[0]
    res = results_of({h: {} for h in ("H0", *c.of)})
    a, b = (res.summary(h) for h in c.of)
    pl.read_csv(a.dir / c.table).head(0).write_csv(a.dir / c.table)
    with style.styled():
        _, table = draw(c, a, b)
    assert table["hyp"].unique().to_list() == [c.of[1]]
