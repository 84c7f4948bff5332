"""Raw JSONL of many runs -> three typed Parquet tables per (hypothesis, stack).

``ingest(run_dirs, out_dir)`` writes into ``out_dir``:

- ``requests.parquet``: every request line, typed by ``contract.REQUEST_FIELDS`` (fields
  the contract does not know are kept with an inferred type), plus the run's identity
  (``hyp, stack, point, rep, run_id``), ``in_window`` (the request belongs to the
  analysed phase: ``load``, or ``replay`` for the re-hydration scenario) and its join to
  telemetry by time: ``tel_t_ns`` (the nearest sample to ``sent_ns``), ``tel_gap_ms``
  and ``tel_aligned`` (gap within one cadence interval; the alignment quality gate);
- ``telemetry.parquet``: every sample, numeric fields as Float64, plus ``phase`` (which
  phase window holds the sample), ``dt_s`` (time since the previous sample), ``io_*``
  (the watched devices' ``disk_<dev>_*`` rates combined) and ``<counter>_delta`` for
  every cumulative counter (the increase since the previous sample; null across a reset);
- ``points.parquet``: one row per run directory, failed attempts included, with its
  outcome, reasons, phase windows, telemetry meta, counts, the alignment share, one column
  per sweep axis (named by its dotted key) and ``excluded``/``exclude_reason``.

Requests are processed one run at a time and streamed into the output, so memory stays
bounded by the largest run, not by the whole hypothesis.

A run's requests and samples are read from ``requests.parquet`` and
``telemetry.parquet`` where the load generator wrote them at the end of its point
(:func:`write_raw_copies`: the same tables, parsed once, while the point's files are
still in the page cache), else from ``requests.jsonl`` and ``telemetry.jsonl`` (the
crash-safe journal and the sidecar's spool, which failed attempts and older runs have
alone).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import polars as pl

from spark_harness import contract, layout

#: The phase each run's statistics come from: ``replay`` where a run has one (H9), else
#: ``load`` (contract.PHASES: the other phases are recorded and excluded).
WINDOW_PHASES = ("replay", "load")
OUTCOMES = ("ok", "marked", "failed")
#: docs/PLAN.md, quality gates: "Telemetry cadence 200 ms by default".
DEFAULT_CADENCE_MS = 200.0
#: Canonical cumulative counters (contract.TELEMETRY_FIELD_DOC says "counter").
COUNTERS = tuple(k for k, v in contract.TELEMETRY_FIELD_DOC.items() if v.startswith("counter"))
#: Per-device rates combined over the watched devices into ``io_<suffix>`` (sums).
DEVICE_RATES = ("r_s", "w_s", "rkb_s", "wkb_s")
REQUIRED_RUN_KEYS = ("hypothesis", "stack", "point", "rep", "phases", "outcome")
ID_COLUMNS = ("hyp", "stack", "point", "rep", "run_id")


class _Compression(TypedDict):
    """The parquet writers' compression keywords."""

    compression: Literal["zstd"]
    compression_level: int


#: Output compression: zstd at its fastest level costs half of the default level's time
#: for files about 15 % larger (benchmarks/README.md). Per-run parts are uncompressed.
COMPRESSION: _Compression = {"compression": "zstd", "compression_level": 1}
REQUESTS = "requests.parquet"
#: runs read, joined and written at once
RUNS_IN_PARALLEL = 2
#: the load generator's typed copy of a run's ``requests.jsonl``, beside it
RAW_REQUESTS = "requests.parquet"
RAW_TELEMETRY = "telemetry.parquet"
TELEMETRY = "telemetry.parquet"
POINTS = "points.parquet"


class IngestError(ValueError):
    """A run directory does not hold what the data contract promises; names the file."""


def request_schema() -> dict[str, pl.DataType]:
    """The polars schema of one request line (``contract.REQUEST_FIELDS``)."""
    return {k: _dtype(v) for k, v in contract.REQUEST_FIELDS.items()}


def _dtype(name: str) -> pl.DataType:
    if name.startswith("List(") and name.endswith(")"):
        return pl.List(_dtype(name[5:-1]))
    dtype = getattr(pl, name)
    return dtype() if isinstance(dtype, type) else dtype


# ------------------------------------------------------------------- locating runs
def expand_run_dirs(run_dirs: Iterable[Path]) -> list[Path]:
    """Run directories: each given one holds ``run.json``, or its attempt sub-folders do.

    A failed point keeps its partial data in ``failed/.../r{rep}/attempt-*``, so passing
    the ``r{rep}`` folder of a failed point ingests every attempt in it.
    """
    out: list[Path] = []
    for d in map(Path, run_dirs):
        if (d / "run.json").is_file():
            out.append(d)
            continue
        attempts = sorted(p.parent for p in d.glob("*/run.json")) if d.is_dir() else []
        if not attempts:
            raise IngestError(f"{d}: no run.json (not a run directory, nor a folder of attempts)")
        out.extend(attempts)
    return out


def failed_attempts(results: Path, hyp: str, stack: str) -> list[Path]:
    """Every failed attempt of one (hypothesis, stack) kept under ``results/failed/``."""
    root = layout.path(results, layout.FAILED_DIR, hyp=hyp, stack=stack, point="*", rep="*")
    return sorted(p.parent for p in root.parent.parent.glob("*/r*/*/run.json"))


# ---------------------------------------------------------------------- reading
def _complete_lines(path: Path) -> tuple[bytes, int]:
    """The decodable JSON lines of a file and how many were not (e.g. a torn last line)."""
    good = io.BytesIO()
    bad = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError:
                bad += 1
                continue
            good.write(line if line.endswith(b"\n") else line + b"\n")
    return good.getvalue(), bad


def _read_ndjson(path: Path, schema: dict[str, pl.DataType] | None) -> tuple[pl.DataFrame, int]:
    """Read JSON lines with polars; undecodable lines are skipped and counted."""
    empty = pl.DataFrame(schema=schema)
    if not path.is_file() or path.stat().st_size == 0:
        return empty, 0
    kw: dict[str, Any] = {"schema": schema} if schema else {"infer_schema_length": None}
    try:
        return pl.read_ndjson(path, **kw), 0
    except pl.exceptions.ComputeError:
        data, bad = _complete_lines(path)
    if not data:
        return empty, bad
    try:
        return pl.read_ndjson(io.BytesIO(data), **kw), bad
    except pl.exceptions.ComputeError as e:
        raise IngestError(f"{path}: lines do not match the data contract: {e}") from e


def _schema_with_extras(path: Path) -> dict[str, pl.DataType]:
    """The contract schema plus any field the first lines carry that it does not know."""
    schema = request_schema()
    if not path.is_file():
        return schema
    with open(path, "rb") as fh:
        head = fh.read(1 << 16).split(b"\n")[:-1] or []
    rows = []
    for line in head[:200]:
        with contextlib.suppress(ValueError):
            rows.append(json.loads(line))
    extra = sorted({k for r in rows for k in r if k not in schema})
    if extra:
        probe = pl.DataFrame([{k: r.get(k) for k in extra} for r in rows])
        schema.update({k: probe.schema[k] for k in extra})
    return schema


@dataclass
class RunMeta:
    """What one ``run.json`` says, reduced to what the tables need."""

    dir: Path
    raw: dict[str, Any]
    hyp: str
    stack: str
    point: str
    rep: int
    outcome: str
    attempt: str
    phases: dict[str, list[int | None]]
    window_phase: str
    cadence_ms: float

    @property
    def run_id(self) -> str:
        base = f"{self.hyp}/{self.stack}/{self.point}/r{self.rep}"
        return f"{base}/{self.attempt}" if self.attempt else base

    @property
    def ids(self) -> dict[str, Any]:
        return {
            "hyp": self.hyp,
            "stack": self.stack,
            "point": self.point,
            "rep": self.rep,
            "run_id": self.run_id,
        }


def read_run(run_dir: Path) -> RunMeta:
    """Parse and check ``run.json``; raise IngestError naming the bad key."""
    path = run_dir / "run.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise IngestError(f"{path}: cannot read run.json: {e}") from e
    if not isinstance(raw, dict):
        raise IngestError(f"{path}: run.json must be an object")
    missing = [k for k in REQUIRED_RUN_KEYS if k not in raw]
    if missing:
        raise IngestError(f"{path}: run.json lacks {', '.join(missing)}")
    if raw["outcome"] not in OUTCOMES:
        raise IngestError(f"{path}: outcome {raw['outcome']!r} is not one of {OUTCOMES}")
    phases = raw["phases"] or {}
    if not isinstance(phases, dict) or any(
        not isinstance(v, list | tuple) or len(v) != 2 for v in phases.values()
    ):
        raise IngestError(f"{path}: phases must map each phase to [start_ns, end_ns]")
    window = next((p for p in WINDOW_PHASES if p in phases), None)
    if window is None and raw["outcome"] != "failed":
        raise IngestError(f"{path}: no load (or replay) phase window in phases")
    tel = raw.get("telemetry") or {}
    spec_tel = (raw.get("spec") or {}).get("telemetry") or {}
    cadence = tel.get("cadence_ms") or spec_tel.get("cadence_ms") or DEFAULT_CADENCE_MS
    try:
        rep = int(raw["rep"])
    except (TypeError, ValueError) as e:
        raise IngestError(f"{path}: rep {raw['rep']!r} is not an integer") from e
    return RunMeta(
        dir=run_dir,
        raw=raw,
        hyp=str(raw["hypothesis"]),
        stack=str(raw["stack"]),
        point=str(raw["point"]),
        rep=rep,
        outcome=raw["outcome"],
        attempt=run_dir.name if raw["outcome"] == "failed" else "",
        phases={k: list(v) for k, v in phases.items()},
        window_phase=window or "load",
        cadence_ms=float(cadence),
    )


# ------------------------------------------------------------------- telemetry
def _phase_label(phases: dict[str, list[int | None]]) -> pl.Expr:
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for name, (start, end) in phases.items():
        if start is None:
            continue
        inside = pl.col("t_ns") >= start
        if end is not None:
            inside = inside & (pl.col("t_ns") < end)
        expr = pl.when(inside).then(pl.lit(name)).otherwise(expr)
    return expr


def _devices(meta: RunMeta, columns: list[str]) -> list[str]:
    """Watched devices: run.json's list where given, else every ``disk_<dev>_*`` seen."""
    seen = sorted(
        {c[5 : -len("_r_s")] for c in columns if c.startswith("disk_") and c.endswith("_r_s")}
    )
    listed = (meta.raw.get("telemetry") or {}).get("devices")
    if isinstance(listed, list) and listed:
        return [d for d in listed if d in seen]
    return seen


def _io_columns(devices: list[str], columns: list[str]) -> list[pl.Expr]:
    """``io_*``: rates summed over watched devices; read await weighted by reads per
    second, null in a sample without reads (iostat's 0.00 there is no latency)."""
    exprs = []
    for rate in DEVICE_RATES:
        cols = [f"disk_{d}_{rate}" for d in devices if f"disk_{d}_{rate}" in columns]
        if cols:
            exprs.append(pl.sum_horizontal(cols).alias(f"io_{rate}"))
    pairs = [(f"disk_{d}_r_await_ms", f"disk_{d}_r_s") for d in devices]
    pairs = [(a, r) for a, r in pairs if a in columns and r in columns]
    if pairs:
        weighted = pl.sum_horizontal([pl.col(a) * pl.col(r) for a, r in pairs])
        reads = pl.sum_horizontal([pl.col(r) for _, r in pairs])
        exprs.append(pl.when(reads > 0).then(weighted / reads).alias("io_r_await_ms"))
    util = [f"disk_{d}_util_pct" for d in devices if f"disk_{d}_util_pct" in columns]
    if util:
        exprs.append(pl.max_horizontal(util).alias("io_util_pct"))
    return exprs


def _unloaded_reads(raw: dict[str, Any], devices: list[str]) -> tuple[list[int], list[float]]:
    """The watched device's unloaded read time per request size (bytes, ms), as the load
    generator's probe measured it before the idle phase (telemetry.probe); empty where
    there was none or it ran on a device the sidecar did not watch."""
    probe = raw.get("read_probe") or {}
    if probe.get("device") not in devices:
        return [], []
    pairs = sorted((int(b), float(ms)) for b, ms in (probe.get("unloaded_read_ms") or {}).items())
    return [b for b, _ in pairs], [ms for _, ms in pairs]


def _perturbation_reads(raw: dict[str, Any]) -> float | None:
    """Bytes/s the QoS perturbation (fio) itself read, from its own report: 0 where none
    ran, None where one ran without a report (so its reads cannot be told apart)."""
    profile = ((raw.get("spec") or {}).get("qos") or {}).get("profile", "none")
    if profile == "none":
        return 0.0
    summary = ((raw.get("qos") or {}).get("stopped") or {}).get("summary")
    if not summary or summary.get("read_mib_s") is None:
        return None
    return float(summary["read_mib_s"]) * 2**20


def _io_scheduler(raw: dict[str, Any]) -> str | None:
    """The I/O scheduler the contended device ran during the point where the plan held
    one (``qos.io_scheduler``): the one asked for, or the one found where it could not
    be set; None where the plan left the device as it was."""
    held = raw.get("io_scheduler")
    if not held:
        return None
    return held.get("requested") if held.get("applied") else held.get("before")


def read_telemetry(meta: RunMeta) -> tuple[pl.DataFrame, list[str], int]:
    """One run's samples with derived columns, its unavailable sources, bad line count."""
    raw = meta.dir / RAW_TELEMETRY
    df, bad = (pl.read_parquet(raw), 0) if raw.is_file() else _raw_telemetry(meta.dir)
    unavailable = _unavailable_meta(meta)
    if "kind" in df.columns:
        for r in df.filter(pl.col("kind") == "unavailable").iter_rows(named=True):
            unavailable[str(r.get("source"))] = r.get("reason")
        df = df.filter(pl.col("kind") == "sample")
    if "t_ns" not in df.columns:
        df = pl.DataFrame(schema={"t_ns": pl.Int64})
    df = df.drop([c for c in ("kind", "source", "reason") if c in df.columns])
    numeric = [c for c, t in df.schema.items() if c != "t_ns" and (t.is_numeric() or t == pl.Null)]
    df = (
        df.filter(pl.col("t_ns").is_not_null())
        .with_columns(pl.col("t_ns").cast(pl.Int64), *[pl.col(c).cast(pl.Float64) for c in numeric])
        .sort("t_ns")
    )
    cols = df.columns
    derived = [
        _phase_label(meta.phases).alias("phase"),
        (pl.col("t_ns").diff() / 1e9).alias("dt_s"),
        *_io_columns(_devices(meta, cols), cols),
        *[
            pl.when(pl.col(c).diff() >= 0).then(pl.col(c).diff()).alias(f"{c}_delta")
            for c in COUNTERS
            if c in cols
        ],
    ]
    df = df.with_columns(derived)
    ids = [pl.lit(v).alias(k) for k, v in meta.ids.items()]
    fields = sorted(c for c in df.columns if c not in ("t_ns", "phase", "dt_s"))
    listed = [f"{src}: {why}" if why else src for src, why in sorted(unavailable.items())]
    return df.select(*ids, "t_ns", "phase", "dt_s", *fields), listed, bad


def _unavailable_meta(meta: RunMeta) -> dict[str, str | None]:
    """Sources run.json lists as unavailable (names, or objects with a reason)."""
    out: dict[str, str | None] = {}
    for u in (meta.raw.get("telemetry") or {}).get("unavailable") or []:
        if isinstance(u, dict):
            out[str(u.get("source"))] = u.get("reason")
        else:
            out[str(u)] = None
    return out


# -------------------------------------------------------------------- requests
def _raw_requests(run_dir: Path) -> tuple[pl.DataFrame, int]:
    """A run's request lines, typed, and how many lines could not be decoded."""
    path = run_dir / "requests.jsonl"
    return _read_ndjson(path, _schema_with_extras(path))


def _raw_telemetry(run_dir: Path) -> tuple[pl.DataFrame, int]:
    """A run's telemetry lines (samples and ``unavailable`` records), types inferred from
    every line, and how many lines could not be decoded."""
    return _read_ndjson(run_dir / "telemetry.jsonl", None)


def write_raw_copies(run_dir: Path) -> list[Path]:
    """Write ``requests.parquet`` and ``telemetry.parquet`` beside a complete point's JSON
    lines (each atomically): what the load generator does when its point ends, while the
    files are still in the page cache, so ingest need not parse JSON."""
    written = []
    for name, read in ((RAW_REQUESTS, _raw_requests), (RAW_TELEMETRY, _raw_telemetry)):
        df, _ = read(run_dir)
        tmp = run_dir / f".{name}.part"
        df.write_parquet(tmp, **COMPRESSION)
        os.replace(tmp, run_dir / name)
        written.append(run_dir / name)
    return written


def read_requests(meta: RunMeta, samples: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """One run's requests, typed, joined to the nearest telemetry sample in time."""
    raw = meta.dir / RAW_REQUESTS
    df, bad = (pl.read_parquet(raw), 0) if raw.is_file() else _raw_requests(meta.dir)
    missing = [k for k, t in request_schema().items() if k not in df.columns]
    if missing:  # an empty file yields no columns
        df = df.with_columns([pl.lit(None, dtype=request_schema()[k]).alias(k) for k in missing])
    t_ref = pl.coalesce("sent_ns", "ready_ns").alias("_t_ref")
    df = df.with_columns(t_ref).sort("_t_ref", nulls_last=True)
    tel_t = samples.select(pl.col("t_ns").alias("tel_t_ns")).sort("tel_t_ns")
    known = df.filter(pl.col("_t_ref").is_not_null())
    unknown = df.filter(pl.col("_t_ref").is_null()).with_columns(
        pl.lit(None, dtype=pl.Int64).alias("tel_t_ns")
    )
    if tel_t.height:
        known = known.join_asof(tel_t, left_on="_t_ref", right_on="tel_t_ns", strategy="nearest")
    else:
        known = known.with_columns(pl.lit(None, dtype=pl.Int64).alias("tel_t_ns"))
    df = pl.concat([known, unknown], how="vertical_relaxed")
    gap = ((pl.col("tel_t_ns") - pl.col("_t_ref")).abs() / 1e6).alias("tel_gap_ms")
    df = df.with_columns(gap).with_columns(
        (pl.col("tel_gap_ms") <= meta.cadence_ms).fill_null(False).alias("tel_aligned"),
        (pl.col("phase") == meta.window_phase).fill_null(False).alias("in_window"),
    )
    ids = [pl.lit(v).alias(k) for k, v in meta.ids.items()]
    return df.drop("_t_ref").select(*ids, pl.all()), bad


# ---------------------------------------------------------------------- points
def point_row(
    meta: RunMeta,
    requests: pl.DataFrame,
    samples: pl.DataFrame,
    unavailable: list[str],
    bad_lines: int,
) -> dict[str, Any]:
    """One ``points.parquet`` row: who the run is, what happened, what it counts."""
    raw = meta.raw
    spec = raw.get("spec") or {}
    sim = (spec.get("server") or {}).get("sim") or {}
    endpoint = raw.get("endpoint") or {}
    tel = raw.get("telemetry") or {}
    win = requests.filter(pl.col("in_window"))
    n_win = win.height
    n_ok = int(win["ok"].fill_null(False).sum())
    rejected = int((win["error_kind"] == "rejected").fill_null(False).sum())
    aligned = int(win["tel_aligned"].sum())
    start, end = meta.phases.get(meta.window_phase, [None, None])
    if end is None and start is not None:  # a run that died in its window: last evidence
        ends = [
            cast("int | None", requests["done_ns"].max()),
            cast("int | None", samples["t_ns"].max()) if samples.height else None,
        ]
        end = max([e for e in ends if e is not None], default=start)
    idle = meta.phases.get("idle", [None, None])
    achieved = tel.get("achieved_cadence_ms")
    if achieved is None and samples.height > 1:
        achieved = float(cast(float, samples["dt_s"].median())) * 1000
    reasons = [str(r) for r in raw.get("reasons") or []]
    excluded = None
    if meta.outcome == "failed":
        excluded = "run_failed" + (f":{reasons[0]}" if reasons else "")
    elif n_ok == 0:
        excluded = "no_ok_requests_in_window"
    return {
        **meta.ids,
        "attempt": meta.attempt,
        "outcome": meta.outcome,
        "reasons": reasons,
        "excluded": excluded is not None,
        "exclude_reason": excluded,
        "source_dir": str(meta.dir),
        "window_phase": meta.window_phase,
        "window_start_ns": start,
        "window_end_ns": end,
        "idle_start_ns": idle[0],
        "idle_end_ns": idle[1],
        "phases_json": json.dumps(meta.phases),
        "cadence_ms": meta.cadence_ms,
        "achieved_cadence_ms": None if achieved is None else float(achieved),
        "devices": (devices := _devices(meta, samples.columns)),
        "unloaded_read_bytes": (unloaded := _unloaded_reads(raw, devices))[0],
        "unloaded_read_ms": unloaded[1],
        "unavailable": unavailable,
        "block_bytes": endpoint.get("block_bytes"),
        "block_tokens": sim.get("block_tokens") or endpoint.get("block_tokens"),
        "server_mode": sim.get("mode"),
        "g3_dir": endpoint.get("g3_dir"),
        "kv_tiers": endpoint.get("kv_tiers"),
        "io_scheduler": _io_scheduler(raw),
        "perturbation_read_bps": _perturbation_reads(raw),
        "n_requests": requests.height,
        "n_window": n_win,
        "n_window_ok": n_ok,
        "n_window_errors": n_win - n_ok,
        "n_window_rejected": rejected,
        "error_share": (n_win - n_ok) / n_win if n_win else None,
        "n_window_aligned": aligned,
        "aligned_share": aligned / n_win if n_win else None,
        "n_samples": samples.height,
        "bad_lines": bad_lines,
        "axes_json": json.dumps(spec.get("axes") or {}, sort_keys=True),
        "spec_json": json.dumps(spec, sort_keys=True),
    }


POINT_SCHEMA: dict[str, pl.DataType] = {
    "hyp": pl.String(),
    "stack": pl.String(),
    "point": pl.String(),
    "rep": pl.Int64(),
    "run_id": pl.String(),
    "attempt": pl.String(),
    "outcome": pl.String(),
    "reasons": pl.List(pl.String()),
    "excluded": pl.Boolean(),
    "exclude_reason": pl.String(),
    "source_dir": pl.String(),
    "window_phase": pl.String(),
    "window_start_ns": pl.Int64(),
    "window_end_ns": pl.Int64(),
    "idle_start_ns": pl.Int64(),
    "idle_end_ns": pl.Int64(),
    "phases_json": pl.String(),
    "cadence_ms": pl.Float64(),
    "achieved_cadence_ms": pl.Float64(),
    "devices": pl.List(pl.String()),
    "unloaded_read_bytes": pl.List(pl.Int64()),
    "unloaded_read_ms": pl.List(pl.Float64()),
    "unavailable": pl.List(pl.String()),
    "block_bytes": pl.Int64(),
    "block_tokens": pl.Int64(),
    "server_mode": pl.String(),
    "g3_dir": pl.String(),
    "kv_tiers": pl.List(pl.String()),
    "io_scheduler": pl.String(),
    "perturbation_read_bps": pl.Float64(),
    "n_requests": pl.Int64(),
    "n_window": pl.Int64(),
    "n_window_ok": pl.Int64(),
    "n_window_errors": pl.Int64(),
    "n_window_rejected": pl.Int64(),
    "error_share": pl.Float64(),
    "n_window_aligned": pl.Int64(),
    "aligned_share": pl.Float64(),
    "n_samples": pl.Int64(),
    "bad_lines": pl.Int64(),
    "axes_json": pl.String(),
    "spec_json": pl.String(),
}


def _points_frame(rows: list[dict[str, Any]], axes: list[dict[str, Any]]) -> pl.DataFrame:
    """The points table, one typed column per sweep axis (named by its dotted key)."""
    base = pl.DataFrame(rows, schema=POINT_SCHEMA)
    keys = sorted({k for a in axes for k in a})
    if not keys:
        return base
    ax = pl.DataFrame([{k: a.get(k) for k in keys} for a in axes], infer_schema_length=None)
    return pl.concat([base, ax], how="horizontal")


def _check_unique(metas: list[RunMeta]) -> None:
    seen: dict[str, Path] = {}
    for m in metas:
        if m.run_id in seen:
            raise IngestError(
                f"{m.dir} and {seen[m.run_id]} are both run {m.run_id}: one (hypothesis, stack,"
                " point, rep) can have only one completed run"
            )
        seen[m.run_id] = m.dir


# ------------------------------------------------------------------------ main
def ingest(run_dirs: list[Path], out_dir: Path) -> None:
    """Ingest run directories (completed runs and failed attempts) into ``out_dir``."""
    dirs = expand_run_dirs(run_dirs)
    if not dirs:
        raise IngestError("ingest: no run directories given")
    metas = [read_run(d) for d in dirs]
    _check_unique(metas)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".ingest-", dir=out_dir))
    try:

        def one_run(i: int, meta: RunMeta) -> tuple[Path, pl.DataFrame, dict[str, Any]]:
            samples, unavailable, bad_t = read_telemetry(meta)
            requests, bad_r = read_requests(meta, samples)
            part = tmp / f"requests-{i:06d}.parquet"
            requests.write_parquet(part, compression="uncompressed")
            return part, samples, point_row(meta, requests, samples, unavailable, bad_t + bad_r)

        # two runs at a time: most of a run's work is polars on frames too small for its
        # own threads to fill both cores (benchmarks/README.md)
        with ThreadPoolExecutor(RUNS_IN_PARALLEL) as pool:
            done = list(pool.map(one_run, range(len(metas)), metas))
        parts = [d[0] for d in done]
        samples_all = [d[1] for d in done]
        rows = [d[2] for d in done]
        axes = [(meta.raw.get("spec") or {}).get("axes") or {} for meta in metas]
        pl.concat([pl.scan_parquet(p) for p in parts], how="diagonal_relaxed").sink_parquet(
            tmp / REQUESTS, **COMPRESSION
        )
        pl.concat(samples_all, how="diagonal_relaxed").write_parquet(tmp / TELEMETRY, **COMPRESSION)
        _points_frame(rows, axes).write_parquet(tmp / POINTS, **COMPRESSION)
        for name in (REQUESTS, TELEMETRY, POINTS):
            os.replace(tmp / name, out_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
