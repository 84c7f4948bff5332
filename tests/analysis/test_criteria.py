"""Rule building blocks on planted runs: completeness, differences, material slopes."""

import polars as pl

from spark_harness.analysis import criteria
from spark_harness.analysis.evidence import PointStats
from spark_harness.analysis.runs import load
from spark_harness.ingest import ingest
from spark_harness_testkit.synthetic import Levels, RunSpec, write_run


def _stats(
    tmp_path, p99_per_ms_await: float, await_scatter: float = 0.0, n: int = 400
) -> PointStats:
    specs = [
        RunSpec("H4B", "B", f"qos-{a}", rep, axes={"qos.profile": str(a)}, n_requests=n,
                ttft_p50_ms=50.0, ttft_p99_ms=70.0 + p99_per_ms_await * a,
                window=Levels(read_await_ms=a + await_scatter * (rep - 1)), seed=rep)
        for a in (1, 4, 8) for rep in (0, 1, 2)
    ]  # fmt: skip
    ingest([write_run(tmp_path / "results", rs) for rs in specs], tmp_path / "ingest")
    data = load({("H4B", "B"): tmp_path / "ingest"})
    return PointStats(data, data.runs.sort("point", "rep"))


def test_planted_slope_is_supported_and_its_size_recovered(tmp_path):
    ps = _stats(tmp_path, p99_per_ms_await=5.0)
    c = criteria.material_slope("s", ps, "read_await_ms", "p99", "src", "ms/ms", [])
    assert c.status == "supported"
    assert 4.0 < c.value < 6.0
    assert c.details["relative_rise_over_range"] > 0.3


def test_flat_p99_is_refuted_as_not_material(tmp_path):
    ps = _stats(tmp_path, p99_per_ms_await=0.0)
    c = criteria.material_slope("s", ps, "read_await_ms", "p99", "src", "ms/ms", [])
    assert c.status == "not supported" and c.reasons == ["rise_not_material:s"]


def test_swing_spans_the_designs_range_not_the_runs_scatter(tmp_path):
    """Read await 1, 4, 8 ms by design, each run ±0.5 ms off its point's: p99 changes by
    5 ms/ms x 7 ms = 35 ms across the design (less the slope's attenuation by the
    scatter), and the baseline is the 1 ms point's mean p99 (~75 ms). Spanning the runs'
    extremes (0.5 to 8.5 ms) read 39 ms: the scatter stretched the range."""
    ps = _stats(tmp_path, p99_per_ms_await=5.0, await_scatter=0.5)
    rise = criteria.swing(ps, "read_await_ms", "p99")
    assert 32.0 < rise.value < 36.0
    rel = criteria.relative_swing(ps, "read_await_ms", "p99")
    assert 0.42 < rel.value < 0.48


def test_difference_complete_and_total(tmp_path):
    ps = _stats(tmp_path, p99_per_ms_await=5.0)
    hi, lo = ("H4B", "B", "qos-8"), ("H4B", "B", "qos-1")
    d = criteria.difference(ps, "read_await_ms", hi, lo)
    assert 6.5 < d.value < 7.5 and d.ci[0] > 6
    r = criteria.ratio(ps, "read_await_ms", hi, lo)
    assert 7.5 < r.value < 8.5 and r.ci[0] < r.value < r.ci[1] and r.ci[0] > 7
    assert criteria.complete(ps, "p99", "read_await_ms")
    assert not criteria.complete(ps, "g3_fetch_p95_ms")  # never reported: missing, not 0
    frame = pl.DataFrame({"a": [None, None]}, schema={"a": pl.Float64})
    assert criteria.total(frame, "a") is None
    assert criteria.total(frame.with_columns(pl.lit(0.0).alias("a")), "a") == 0.0


def test_tail_is_p99_with_200_requests_in_every_window_else_p95(tmp_path):
    """docs/PLAN.md: p99 needs 200 requests in the window; with fewer the rule judges
    p95 and says so (the statistic names the percentile it used)."""
    full, short = _stats(tmp_path / "full", 5.0), _stats(tmp_path / "short", 5.0, n=150)
    assert criteria.resolve(full, criteria.TAIL) == "p99"
    assert criteria.resolve(short, criteria.TAIL) == "p95"
    assert criteria.resolve(short, "p99") == "p99"  # a named percentile stays itself
    for ps, q in ((full, "p99"), (short, "p95")):
        assert (criteria.per_run(ps, criteria.TAIL)[0] == criteria.per_run(ps, q)[0]).all()
        assert (criteria.per_point(ps, criteria.TAIL)[0] == criteria.per_point(ps, q)[0]).all()
    c = criteria.material_slope("s", short, "read_await_ms", criteria.TAIL, "src", "ms/ms", [])
    assert c.statistic == "OLS slope of p95 on read_await_ms over runs"
    assert c.status == "supported"
