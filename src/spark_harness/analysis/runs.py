"""Ingested tables -> one row of evidence per run (point and repetition).

Every evaluator reads the same :class:`Runs`: the points table of its sources (failed
attempts included, so they can be reported), and for every usable run its request
statistics over the analysed window (TTFT percentiles, errors, throughput, G3 fetch
time), telemetry means over the window and the idle baseline, and counter increases over
the window. Read await is averaged over reads, not samples (a sample without reads has
no await), and beside it stands the device's unloaded read time for requests of the
window's mean size, the baseline a rise is judged against. The analysed window is the
steady part of the load window: it starts once TTFT has settled (:func:`steady_starts`),
never later than its middle. A value is null when its source field was never recorded:
missing evidence stays visibly missing, it never becomes a zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from spark_harness.analysis.stats import mser_truncation, percentile
from spark_harness.ingest import POINTS, REQUESTS, TELEMETRY

#: Run-level percentiles of TTFT kept as columns.
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}

#: Telemetry gauges and rates averaged over the window (and the idle baseline):
#: column in runs -> canonical/derived telemetry field.
GAUGES = {
    "iowait_pct": "cpu_iowait_pct",
    "read_iops": "io_r_s",
    "read_kbps": "io_rkb_s",
    "mem_available_bytes": "mem_available_bytes",
    "pgmajfault_per_s": "pgmajfault_per_s",
    "pswpin_per_s": "pswpin_per_s",
    "swap_used_bytes": "swap_used_bytes",
    "kv_g1_usage": "kv_g1_usage",
    "kv_g1_total_blocks": "kv_g1_total_blocks",
    "kv_waiting": "kv_waiting",
    "kv_g3_hit_rate": "kv_g3_hit_rate",
}

#: Counter increases over the window: column in runs -> canonical counter.
COUNTER_DELTAS = {
    "g3_onboard_blocks": "kv_onboard_blocks_g3",
    "g2_onboard_blocks": "kv_onboard_blocks_g2",
    "offload_g1_g2_blocks": "kv_offload_blocks_g1_g2",
    "offload_g2_g3_blocks": "kv_offload_blocks_g2_g3",
    "offload_g1_g3_blocks": "kv_offload_blocks_g1_g3",
    "g3_fetch_seconds_sum": "kv_g3_fetch_seconds_sum",
    "g3_fetch_count": "kv_g3_fetch_seconds_count",
    "prefix_hit_tokens": "kv_prefix_hits_tokens",
    # vLLM's offload traffic, in bytes (blocks from them: _blocks_from_bytes)
    "offload_g1_g2_bytes": "kv_offload_bytes_g1_g2",
    "offload_g2_g3_bytes": "kv_offload_bytes_g2_g3",
    "onboard_g2_g1_bytes": "kv_onboard_bytes_g2_g1",
    "onboard_g3_g2_bytes": "kv_onboard_bytes_g3_g2",
    "server_read_bytes": "server_read_bytes",
    # the simulator's own clock: measured vs modeled engine step time
    "sim_step_actual_s": "sim_engine_step_actual_seconds",
    "sim_step_modeled_s": "sim_engine_step_modeled_seconds",
    # the simulator's UMA paging and LoRA loads (the v2.5 plan, analysis.v25)
    "paging_faults": "sim_paging_faults",
    "paging_pages_in": "sim_paging_pages_in",
    "lora_loads": "sim_lora_loads",
    "lora_read_bytes": "sim_lora_read_bytes",
}

RUN_KEYS = ["hyp", "stack", "point", "rep"]


@dataclass
class Runs:
    """The evidence of one hypothesis's sources, per run."""

    points: pl.DataFrame  # every run directory ingested, failed attempts included
    runs: pl.DataFrame  # usable runs (not excluded), one row each, metrics as columns
    ttft: dict[str, np.ndarray]  # run_id -> sorted TTFT (ms) of ok window requests
    fetch: dict[str, np.ndarray]  # run_id -> sorted G3 fetch time (ms), where reported

    def axis_columns(self) -> list[str]:
        """Sweep axis columns (dotted keys) present in the points table."""
        return [c for c in self.points.columns if "." in c]


def _scan(sources: Mapping[tuple[str, str], Path], name: str) -> pl.LazyFrame:
    frames = []
    for (hyp, stack), d in sources.items():
        path = Path(d) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ingested table missing for {hyp}/{stack}")
        frames.append(pl.scan_parquet(path))
    return pl.concat(frames, how="diagonal_relaxed")


def _present_sum(col: str) -> pl.Expr:
    """Sum that stays null when the field was never recorded (a plain sum would be 0)."""
    return pl.when(pl.col(col).count() > 0).then(pl.col(col).sum())


def _at(field: str, instant: str) -> pl.Expr:
    """A cumulative counter's value at an instant, interpolated between the samples
    around it (order-free: joins and group-bys need not keep the time order)."""
    t = pl.col(instant).first()
    ok = pl.col(field).is_not_null()
    before, after = ok & (pl.col("t_ns") <= t), ok & (pl.col("t_ns") >= t)
    tb, ta = pl.col("t_ns").filter(before).max(), pl.col("t_ns").filter(after).min()
    vb = pl.col(field).filter(before & (pl.col("t_ns") == tb)).first()
    va = pl.col(field).filter(after & (pl.col("t_ns") == ta)).first()
    frac = (t - tb).cast(pl.Float64) / (ta - tb).cast(pl.Float64)
    return (
        pl.when(tb.is_null())
        .then(va)
        .when(ta.is_null() | (ta == tb))
        .then(vb)
        .otherwise(vb + (va - vb) * frac)
    )


def _telemetry(tel: pl.LazyFrame, points: pl.DataFrame) -> pl.DataFrame:
    cols = set(tel.collect_schema().names())
    win = points.select("run_id", "window_phase", "window_start_ns", "window_end_ns")
    # in time order within each run: a mean over samples then sums them in one order
    tel = tel.join(win.lazy(), on="run_id", how="inner").sort("run_id", "t_ns")
    in_window = (pl.col("phase") == pl.col("window_phase")) & (
        pl.col("t_ns") >= pl.col("window_start_ns")
    )
    idle = pl.col("phase") == "idle"

    def mean(field: str, where: pl.Expr) -> pl.Expr:
        return pl.col(field).filter(where).mean() if field in cols else pl.lit(None, pl.Float64)

    def delta(field: str) -> pl.Expr:
        """Increase of a counter over the window: its value at the end minus at the start."""
        if field not in cols:
            return pl.lit(None, pl.Float64)
        return _at(field, "window_end_ns") - _at(field, "window_start_ns")

    def per_read(field: str, where: pl.Expr) -> pl.Expr:
        """Mean of ``field`` over the reads completed where ``where`` holds (iostat's
        figure for that stretch); null without reads."""
        if not {field, "io_r_s", "dt_s"} <= cols:
            return pl.lit(None, pl.Float64)
        reads = (pl.col("io_r_s") * pl.col("dt_s")).filter(where & pl.col(field).is_not_null())
        weighted = (pl.col(field) * pl.col("io_r_s") * pl.col("dt_s")).filter(
            where & pl.col(field).is_not_null()
        )
        return pl.when(reads.sum() > 0).then(weighted.sum() / reads.sum())

    read_bytes = (
        (pl.col("io_rkb_s") * 1024 * pl.col("dt_s")).filter(in_window).sum()
        if {"io_rkb_s", "dt_s"} <= cols
        else pl.lit(None, pl.Float64)
    )
    if {"io_rkb_s", "io_r_s"} <= cols:  # the mean request size of a sample's reads
        size = pl.col("io_rkb_s") * 1024 / pl.col("io_r_s")
        tel = tel.with_columns(pl.when(pl.col("io_r_s") > 0).then(size).alias("io_r_bytes"))
        cols.add("io_r_bytes")
    aggs = [
        *[mean(f, in_window).alias(k) for k, f in GAUGES.items()],
        *[mean(f, idle).alias(f"idle_{k}") for k, f in GAUGES.items()],
        per_read("io_r_await_ms", in_window).alias("read_await_ms"),
        per_read("io_r_await_ms", idle).alias("idle_read_await_ms"),
        per_read("io_r_bytes", in_window).alias("read_request_bytes"),
        *[delta(f).alias(k) for k, f in COUNTER_DELTAS.items()],
        read_bytes.alias("read_bytes"),
        pl.col("t_ns").filter(in_window).count().alias("n_window_samples"),
    ]
    return tel.group_by("run_id").agg(aggs).collect()


def _split(frame: pl.DataFrame, value: str) -> dict[str, np.ndarray]:
    """run_id -> numpy array of ``value``, for a frame sorted by run_id."""
    if frame.height == 0:
        return {}
    ids = frame["run_id"].to_numpy()
    vals = frame[value].to_numpy().astype(float)
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    return {str(ids[s]): part for s, part in zip(starts, np.split(vals, cuts), strict=True)}


#: Why a run's analysed window is capped at the middle of its load window.
NO_STEADY_STATE = "no_steady_state"


def steady_starts(req: pl.LazyFrame, usable: pl.DataFrame, steady: bool = True) -> pl.DataFrame:
    """Per run, where its analysed window starts: MSER-5 on the ok requests' TTFT in
    completion order (:func:`~.stats.mser_truncation`), capped at the middle of the load
    window. Columns: ``run_id``, ``window_start_ns`` (analysed), ``load_start_ns``,
    ``warmup_s`` and ``steady_reason`` (``no_steady_state`` where TTFT never settled in
    the first half; the window then starts at the cap). ``steady=False`` keeps every
    run's whole load window (a plan entry whose points measure a transient)."""
    done = (
        req.filter(pl.col("in_window") & pl.col("ok") & pl.col("ttft_ms").is_not_null())
        .select("run_id", "done_ns", "ttft_ms")
        .sort("run_id", "done_ns", "ttft_ms")
        .collect()
    )
    by_run = done.partition_by("run_id", as_dict=True)
    out = []
    for run_id, start, end in usable.select(
        "run_id", "window_start_ns", "window_end_ns"
    ).iter_rows():
        part = by_run.get((run_id,))
        cut, settled = (
            mser_truncation(part["ttft_ms"].to_numpy())
            if steady and part is not None
            else (0, None)
        )
        begin = start
        if cut and start is not None and end is not None:
            assert part is not None  # a cut comes only from a run's own completions
            # just after the last dropped completion, never past the middle of the window
            begin = min(int(part["done_ns"][cut - 1]) + 1, start + (end - start) // 2)
        out.append(
            {
                "run_id": run_id,
                "window_start_ns": begin,
                "load_start_ns": start,
                "warmup_s": None if start is None else (begin - start) / 1e9,
                "steady_reason": None if settled is not False else NO_STEADY_STATE,
            }
        )
    schema = {
        "run_id": pl.String,
        "window_start_ns": pl.Int64,
        "load_start_ns": pl.Int64,
        "warmup_s": pl.Float64,
        "steady_reason": pl.String,
    }
    return pl.DataFrame(out, schema=schema)


def load(sources: Mapping[tuple[str, str], Path], steady: bool = True) -> Runs:
    """Read the ingested tables of ``sources`` ((hypothesis, stack) -> ingest dir);
    ``steady``: analyse each run's steady window (:func:`steady_starts`)."""
    # in run order, whatever order the sources' files and rows came in: listings and
    # every sum over rows are then the same on every machine
    points = _scan(sources, POINTS).collect().sort([*RUN_KEYS, "run_id"])
    req = _scan(sources, REQUESTS).join(
        points.lazy().filter(~pl.col("excluded")).select("run_id"), on="run_id"
    )
    starts = steady_starts(req, points.filter(~pl.col("excluded")), steady)
    usable = (
        points.filter(~pl.col("excluded"))
        .drop("window_start_ns")
        .join(starts, on="run_id", how="left")
    )
    # a request belongs to the analysed window when it completed in it (unknown: kept)
    after = (pl.coalesce("done_ns", "sent_ns") >= pl.col("window_start_ns")).fill_null(True)
    win = req.join(usable.lazy().select("run_id", "window_start_ns"), on="run_id").filter(
        pl.col("in_window") & after
    )
    ok_ttft = (
        win.filter(pl.col("ok") & pl.col("ttft_ms").is_not_null())
        .select("run_id", "ttft_ms")
        .sort("run_id", "ttft_ms")
    )
    # a server that reports G3 fetch time for some requests fetched nothing for the
    # others: within such a source a null fetch time is 0; elsewhere it stays unknown
    reports = pl.col("kv_g3_fetch_ms").is_not_null().any().over("hyp", "stack")
    fetch_frame = (
        win.filter(pl.col("ok") & pl.col("ttft_ms").is_not_null())
        .filter(reports)
        .select("run_id", pl.col("kv_g3_fetch_ms").fill_null(0.0))
        .sort("run_id", "kv_g3_fetch_ms")
    )
    req_aggs = win.group_by("run_id").agg(
        _present_sum("cached_tokens").alias("cached_tokens"),
        _present_sum("prompt_tokens").alias("prompt_tokens"),
        pl.col("ok").fill_null(False).sum().alias("n_steady_ok"),
    )
    session = (
        req.filter(pl.col("session_id").is_not_null())
        .group_by("run_id", "session_id")
        .agg((pl.col("prompt_tokens") + pl.col("completion_tokens")).max().alias("ctx"))
        .group_by("run_id")
        .agg(
            pl.col("ctx").sum().alias("working_set_tokens"),
            pl.len().alias("n_sessions"),
        )
    )
    # one pass over the requests for all three (polars shares the common scan)
    ok_ttft_df, fetch_df, per_req = pl.collect_all(
        [ok_ttft, fetch_frame, req_aggs.join(session, on="run_id", how="left")]
    )
    ttft = _split(ok_ttft_df, "ttft_ms")
    fetch = _split(fetch_df, "kv_g3_fetch_ms")
    tel = _telemetry(_scan(sources, TELEMETRY), usable)
    window_s = (pl.col("window_end_ns") - pl.col("window_start_ns")) / 1e9
    runs = (
        usable.with_columns(window_s.alias("window_s"))
        .join(per_req, on="run_id", how="left")
        .join(tel, on="run_id", how="left")
        .with_columns((pl.col("n_steady_ok") / pl.col("window_s")).alias("throughput_rps"))
    )
    runs = _blocks_from_bytes(runs)
    pct = {
        f"ttft_{k}": [percentile(ttft.get(r, np.empty(0)), q) for r in runs["run_id"]]
        for k, q in QUANTILES.items()
    }
    fetch_p95 = [percentile(fetch[r], 0.95) if r in fetch else None for r in runs["run_id"]]
    # over the sorted values: a parallel group-by's sum changed its last digit from one
    # summary to the next
    mean_ttft = [float(ttft[r].mean()) if r in ttft else None for r in runs["run_id"]]
    runs = runs.with_columns(
        *[pl.Series(k, v, dtype=pl.Float64) for k, v in pct.items()],
        pl.Series("ttft_mean", mean_ttft, dtype=pl.Float64),
        pl.Series("g3_fetch_p95_ms", fetch_p95, dtype=pl.Float64),
        _unloaded_await(runs),
    ).with_columns(
        (pl.col("g3_fetch_p95_ms") / pl.col("ttft_p95")).alias("g3_fetch_share_p95"),
        (pl.col("read_await_ms") - pl.col("unloaded_read_await_ms")).alias("read_await_excess_ms"),
        (pl.col("outcome") == "marked").alias("marked"),
        # > 1: the simulator's engine fell behind its own timing model (a busy host)
        pl.when(pl.col("sim_step_modeled_s") > 0)
        .then(pl.col("sim_step_actual_s") / pl.col("sim_step_modeled_s"))
        .alias("sim_step_overrun"),
    )
    return Runs(points=points, runs=runs.sort(RUN_KEYS), ttft=ttft, fetch=fetch)


def _blocks_from_bytes(runs: pl.DataFrame) -> pl.DataFrame:
    """Tier block counts from byte counters, where the server counts bytes (vLLM) and not
    blocks (KVBM, the simulator): bytes / the stack's ``block_bytes``.

    On vLLM a block read from G3 goes to G2 first and is then loaded into G1, so G1's
    loads hold G3's blocks too: G2's own onboards are G1's loads less G3's reads. A
    reported block count always wins; without ``block_bytes`` the counts stay null.
    """
    per_block = pl.col("block_bytes").cast(pl.Float64)
    g2_own = pl.col("onboard_g2_g1_bytes") - pl.col("onboard_g3_g2_bytes").fill_null(0.0)
    derived = {
        "offload_g1_g2_blocks": pl.col("offload_g1_g2_bytes") / per_block,
        "offload_g2_g3_blocks": pl.col("offload_g2_g3_bytes") / per_block,
        "g3_onboard_blocks": pl.col("onboard_g3_g2_bytes") / per_block,
        "g2_onboard_blocks": g2_own.clip(lower_bound=0.0) / per_block,
    }
    return runs.with_columns(pl.coalesce(pl.col(k), v).alias(k) for k, v in derived.items())


def _unloaded_await(runs: pl.DataFrame) -> pl.Series:
    """``unloaded_read_await_ms``: the device's unloaded read time (the load generator's probe)
    interpolated at the window's mean request size, on a log size scale and held at the
    ends of the probed sizes; null without a probe or without reads in the window."""
    name = "unloaded_read_await_ms"
    need = ("unloaded_read_bytes", "unloaded_read_ms", "read_request_bytes")
    if not set(need) <= set(runs.columns):
        return pl.Series(name, [None] * runs.height, dtype=pl.Float64)
    out: list[float | None] = []
    for sizes, ms, size in runs.select(need).iter_rows():
        if not sizes or size is None or not size > 0:
            out.append(None)
            continue
        out.append(float(np.interp(np.log(size), np.log(sizes), ms)))
    return pl.Series(name, out, dtype=pl.Float64)


def with_tier_shares(runs: pl.DataFrame) -> pl.DataFrame:
    """Add where each run's prompt tokens were served from (null where not recorded).

    Reused tokens are the server's ``cached_tokens``, and at least the tokens onboarded
    from G2/G3 (servers differ in whether they count those as cached): ``g3_hit_share``
    is G3's share of the reused tokens; ``share_g1/g2/g3/miss`` split all prompt tokens.
    """
    bt = pl.col("block_tokens").cast(pl.Float64)
    g3 = pl.col("g3_onboard_blocks") * bt
    g2 = pl.col("g2_onboard_blocks").fill_null(0) * bt
    hits = pl.max_horizontal(pl.col("cached_tokens").cast(pl.Float64), g2 + g3)
    prompt = pl.col("prompt_tokens").cast(pl.Float64)
    return runs.with_columns(
        # unknown G3 onboards or reuse: unknown share, never 0
        pl.when(g3.is_null() | hits.is_null())
        .then(None)
        .when(hits > 0)
        .then(g3 / hits)
        .otherwise(0.0)
        .alias("g3_hit_share"),
        ((hits - g2 - g3) / prompt).alias("share_g1"),
        (g2 / prompt).alias("share_g2"),
        (g3 / prompt).alias("share_g3"),
        (1 - hits / prompt).alias("share_miss"),
    )
