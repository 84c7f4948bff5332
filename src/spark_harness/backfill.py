"""Backfill: run directories of the previous harness -> this project's raw layout.

``spark-harness import SRC_RUN_DIR... --results results --hyp H0`` converts each legacy
run directory (docs/LEGACY.md describes the format) into
``<results>/imported/{hyp}/{stack}/{point}/r{rep}/`` with ``requests.jsonl``,
``telemetry.jsonl`` and ``run.json`` per the data contract (:mod:`spark_harness.contract`).
The ``ingest`` rule reads that area beside the plan's own runs, so imported runs appear
in the summaries, verdicts and figures of their hypothesis.

Nothing is invented: a field the legacy harness did not record is null in
``requests.jsonl``, a telemetry source it did not record is an ``unavailable`` record,
and ``run.json`` lists both under ``imported.absent``. Only exact arithmetic on recorded
values is done (a first-token time is the send time plus the recorded TTFT).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from spark_harness import __version__, contract, layout
from spark_harness.files import write_json
from spark_harness.layout import WILDCARDS
from spark_harness.secrets import redact

FORMAT = "spark-harness-v2.5"
METRICS = "metrics.jsonl"
SYSMON = "sysmon.jsonl"
DYNKV = "dynkv.jsonl"
CONFIG = "config.yaml"
#: Where imported runs live under the results directory (beside raw/ and failed/).
IMPORTED_DIR = "imported/{hyp}/{stack}/{point}/r{rep}"

#: Legacy ``config.yaml`` keys -> the sweep axis (dotted key) they set.
LEGACY_AXES = {
    "concurrency": "load.users",
    "context_tokens": "workload.context_tokens",
    "output_tokens": "workload.output_tokens",
    "adapter_cache": "workload.adapter_cache",
    "adapters_file": "workload.adapters",
    "qos_profile": "qos.profile",
    "resident_blocks": "server.sim.resident_blocks",
}
#: ``sysmon.jsonl`` key -> (canonical telemetry field, factor to its unit).
SYSMON_FIELDS = {
    "cpu_user": ("cpu_user_pct", 1.0),
    "cpu_sys": ("cpu_system_pct", 1.0),
    "cpu_iowait": ("cpu_iowait_pct", 1.0),
    "mem_avail_kb": ("mem_available_bytes", 1024.0),
    "mem_cached_kb": ("mem_cached_bytes", 1024.0),
    "swap_used_kb": ("swap_used_bytes", 1024.0),
    "pgmajfault_s": ("pgmajfault_per_s", 1.0),
    "pswpin_s": ("pswpin_per_s", 1.0),
    "pswpout_s": ("pswpout_per_s", 1.0),
}
#: per-device keys of ``sysmon.jsonl`` ``disk`` -> suffix of ``disk_<dev>_<suffix>``.
DISK_FIELDS = {
    "r_s": "r_s",
    "w_s": "w_s",
    "rkB_s": "rkb_s",
    "wkB_s": "wkb_s",
    "r_await": "r_await_ms",
    "w_await": "w_await_ms",
    "aqu_sz": "aqu_sz",
    "util": "util_pct",
}
#: ``dynkv.jsonl`` key -> canonical telemetry field (Dynamo KV stats and KVBM counters).
DYNKV_FIELDS = {
    "kv_active_blocks": "kv_g1_active_blocks",
    "kv_total_blocks": "kv_g1_total_blocks",
    "gpu_cache_usage_perc": "kv_g1_usage",
    "gpu_prefix_cache_hit_rate": "kv_g1_prefix_hit_rate",
    "kvbm_offload_d2h": "kv_offload_blocks_g1_g2",
    "kvbm_offload_h2d": "kv_offload_blocks_g2_g3",
    "kvbm_onboard_h2d": "kv_onboard_blocks_g2",
    "kvbm_onboard_d2d": "kv_onboard_blocks_g3",
}
#: request fields the legacy ``metrics.jsonl`` can carry (the rest never existed).
RECORDED_REQUEST_FIELDS = {
    "request_id",
    "phase",
    "sent_ns",
    "first_token_ns",
    "done_ns",
    "ttft_ms",
    "e2e_ms",
    "status",
    "ok",
    "error_kind",
    "error",
    "prompt_tokens",
    "completion_tokens",
    "adapter",
    "user_id",
}
LEGACY_PHASES = {"measure": "load", "load": "load", "warmup": "warmup", "cooldown": "cooldown"}


class BackfillError(ValueError):
    """A legacy run directory cannot be converted; the message names the file and line."""


@dataclass
class Imported:
    """Where one legacy run went, and what it lacked."""

    source: Path
    dest: Path
    hyp: str
    stack: str
    point: str
    rep: int
    requests: int
    samples: int
    absent: list[str]


# ----------------------------------------------------------------------- reading
def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise BackfillError(f"{path}:{n}: not JSON: {e}") from e
            if not isinstance(obj, dict):
                raise BackfillError(f"{path}:{n}: each line must be a JSON object")
            yield n, obj


def _ns(path: Path, n: int, ts: Any) -> int:
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        raise BackfillError(f"{path}:{n}: `ts` must be epoch seconds (a number), got {ts!r}")
    return round(float(ts) * 1e9)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


#: A legacy ``config.yaml`` is a few flat keys: anything far bigger or deeper is hostile
#: (a 218-byte alias bomb expands to tens of megabytes once written out).
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 16


def read_config(run_dir: Path) -> dict[str, Any]:
    """The legacy run's ``config.yaml``: at most ``MAX_CONFIG_BYTES``, nested at most
    ``MAX_CONFIG_DEPTH`` deep, with no YAML aliases (untrusted input: docs/SECURITY.md)."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise BackfillError(f"{run_dir}: no {CONFIG} (not a legacy run directory)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise BackfillError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = path.read_text(encoding="utf-8")
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise BackfillError(f"{path}: YAML aliases are not accepted")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_CONFIG_DEPTH:
                    raise BackfillError(f"{path}: nested deeper than {MAX_CONFIG_DEPTH}")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        cfg = yaml.safe_load(text) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise BackfillError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(cfg, dict):
        raise BackfillError(f"{path}: must be a mapping")
    return cfg


def _names(hyp: str, stack: str, point: str, rep: object) -> tuple[str, str, str, int]:
    """The run's names, each checked against the workflow's wildcard rules before it
    becomes part of a path (a legacy ``stack: ../../..`` must not climb out)."""
    for key, value in (("hyp", hyp), ("stack", stack), ("point", point), ("rep", str(rep))):
        if not re.fullmatch(WILDCARDS[key], value) or value in (".", ".."):
            raise BackfillError(f"{key} {value!r} does not match {WILDCARDS[key]}")
    return hyp, stack, point, int(str(rep))


def _phase(path: Path, n: int, phase: Any) -> str:
    if phase not in LEGACY_PHASES:
        known = ", ".join(LEGACY_PHASES)
        raise BackfillError(f"{path}:{n}: `phase` {phase!r} is not one of {known}")
    return LEGACY_PHASES[phase]


def convert_request(path: Path, n: int, line: Mapping[str, Any]) -> dict[str, Any]:
    """One legacy request line -> one contract request (absent fields null)."""
    if "ts" not in line:
        raise BackfillError(f"{path}:{n}: a request needs `ts` (send time, epoch seconds)")
    sent = _ns(path, n, line["ts"])
    ttft, e2e = _number(line.get("lat_ttft_ms")), _number(line.get("lat_e2e_ms"))
    rc = line.get("rc")
    if not isinstance(rc, int) or isinstance(rc, bool):
        raise BackfillError(f"{path}:{n}: `rc` must be an integer (HTTP status, or <= 0)")
    ok = rc == 200 and ttft is not None
    kind = None if ok else ("http" if rc > 0 else "other")
    out = dict.fromkeys(contract.REQUEST_FIELDS)
    out.update(
        request_id=str(line.get("req_id", f"legacy-{n}")),
        user_id=line.get("worker") if isinstance(line.get("worker"), int) else None,
        adapter=line.get("adapter"),
        phase=_phase(path, n, line.get("phase", "measure")),
        sent_ns=sent,
        first_token_ns=None if ttft is None else sent + round(ttft * 1e6),
        done_ns=None if e2e is None else sent + round(e2e * 1e6),
        ttft_ms=ttft,
        e2e_ms=e2e,
        prompt_tokens=line.get("prompt_tokens"),
        completion_tokens=line.get("completion_tokens"),
        status=rc if rc > 0 else None,
        ok=ok,
        error_kind=kind,
        error=None if ok else str(line.get("error") or f"legacy rc {rc}"),
    )
    return out


def _sysmon_sample(path: Path, n: int, line: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "sample", "t_ns": _ns(path, n, line.get("ts"))}
    for key, (field, factor) in SYSMON_FIELDS.items():
        v = _number(line.get(key))
        if v is not None:
            out[field] = v * factor
    for dev, values in (line.get("disk") or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(dev)) or not isinstance(values, dict):
            raise BackfillError(f"{path}:{n}: bad `disk` entry {dev!r}")
        for key, suffix in DISK_FIELDS.items():
            v = _number(values.get(key))
            if v is not None:
                out[f"disk_{dev}_{suffix}"] = v
    return out


def _dynkv_sample(path: Path, n: int, line: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "sample", "t_ns": _ns(path, n, line.get("ts"))}
    for key, field in DYNKV_FIELDS.items():
        v = _number(line.get(key))
        if v is not None:
            out[field] = v
    return out


# ---------------------------------------------------------------------- converting
def _point_name(cfg: Mapping[str, Any], run_dir: Path) -> str:
    raw = str(cfg.get("label") or cfg.get("run_name") or run_dir.name)
    return "legacy-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", raw).strip("-") or "run")


def _axes(cfg: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    axes = {LEGACY_AXES[k]: v for k, v in cfg.items() if k in LEGACY_AXES}
    axes.update(extra)
    return axes


def _window(requests: list[dict[str, Any]]) -> list[int]:
    """The load window: first send to last completion of the load-phase requests."""
    load = [r for r in requests if r["phase"] == "load"]
    if not load:
        raise BackfillError("no request in the measurement phase")
    ends = [r["done_ns"] or r["first_token_ns"] or r["sent_ns"] for r in load]
    return [min(r["sent_ns"] for r in load), max(ends) + 1]


def convert(
    run_dir: Path,
    results: Path,
    hyp: str,
    stack: str | None = None,
    point: str | None = None,
    rep: int | None = None,
    axes: Mapping[str, Any] | None = None,
    force: bool = False,
) -> Imported:
    """Convert one legacy run directory into ``results/imported/...``; see the module doc."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    metrics = run_dir / METRICS
    if not metrics.is_file():
        raise BackfillError(f"{run_dir}: no {METRICS}")
    requests = [convert_request(metrics, n, line) for n, line in _jsonl(metrics)]
    if not requests:
        raise BackfillError(f"{metrics}: no requests")
    try:
        window = _window(requests)
    except BackfillError as e:
        raise BackfillError(f"{metrics}: {e}") from e
    absent = sorted(set(contract.REQUEST_FIELDS) - RECORDED_REQUEST_FIELDS)
    absent += [
        f
        for f in ("prompt_tokens", "completion_tokens", "adapter", "user_id")
        if all(r[f] is None for r in requests)
    ]
    sources: dict[str, list[dict[str, Any]]] = {}
    unavailable: list[dict[str, str]] = []
    for name, fn, source in ((SYSMON, _sysmon_sample, "system"), (DYNKV, _dynkv_sample, "kv")):
        path = run_dir / name
        if path.is_file():
            sources[name] = [fn(path, n, line) for n, line in _jsonl(path)]
        else:
            unavailable.append({"source": source, "reason": f"legacy run has no {name}"})
            absent.append(name)
    unavailable.append({"source": "gpu", "reason": "not recorded by the legacy harness"})
    samples = sorted((s for rows in sources.values() for s in rows), key=lambda s: s["t_ns"])
    cadence = _cadence_ms(sources.get(SYSMON) or sources.get(DYNKV) or [])
    hyp, stack, point, rep = _names(
        hyp,
        stack or str(cfg.get("stack") or "A"),
        point or _point_name(cfg, run_dir),
        rep if rep is not None else cfg.get("rep", 0),
    )
    dest = layout.path(results, IMPORTED_DIR, hyp=hyp, stack=stack, point=point, rep=rep)
    if (dest / "run.json").exists() and not force:
        raise BackfillError(f"{dest} exists (imported before?); pass --force to replace it")
    dest.mkdir(parents=True, exist_ok=True)
    _write_jsonl(dest / "requests.jsonl", requests)
    _write_jsonl(
        dest / "telemetry.jsonl", [*samples, *({"kind": "unavailable", **u} for u in unavailable)]
    )
    load = [r for r in requests if r["phase"] == "load"]
    n_err = sum(1 for r in load if not r["ok"])
    spec = {
        "hypothesis": hyp,
        "stack": stack,
        "point": point,
        "rep": rep,
        "axes": _axes(cfg, axes or {}),
        "telemetry": {"cadence_ms": cadence},
        "server": {"kind": "legacy", "model": cfg.get("model")},
        "legacy_config": redact(cfg),  # no hf_token or password in run.json
    }
    run: dict[str, Any] = {
        "schema_version": contract.SCHEMA_VERSION,
        "hypothesis": hyp,
        "stack": stack,
        "point": point,
        "rep": rep,
        "spec": spec,
        "endpoint": {},
        "versions": {"spark_harness": __version__, "legacy_harness": cfg.get("harness_version")},
        "host": cfg.get("host") or {},
        "clock": None,
        "phases": {"load": window},
        "server_startup_s": None,
        "telemetry": {
            "cadence_ms": cadence,
            "achieved_cadence_ms": cadence,
            "unavailable": unavailable,
        },
        "counts": {"load": len(load), "errors": n_err},
        "outcome": "ok",
        "reasons": [],
        "imported": {"from": str(run_dir.resolve()), "format": FORMAT, "absent": absent},
    }
    write_json(dest / "run.json", run)  # last: its presence marks the run complete
    return Imported(run_dir, dest, hyp, stack, point, rep, len(requests), len(samples), absent)


def _cadence_ms(samples: list[dict[str, Any]]) -> float | None:
    """The median interval between one source's samples (the legacy sampling period)."""
    times = sorted(s["t_ns"] for s in samples)
    gaps = [b - a for a, b in itertools.pairwise(times) if b > a]
    return statistics.median(gaps) / 1e6 if gaps else None


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    tmp.replace(path)


def imported_runs(results: str | Path, hyp: str, stack: str) -> list[Path]:
    """``run.json`` of every run imported for one (hypothesis, stack)."""
    root = Path(results) / "imported" / hyp / stack
    return sorted(root.glob("*/r*/run.json"))


# ---------------------------------------------------------------------------- CLI
def _axis(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--axis wants KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="convert run directories of the previous harness into this project's layout",
        description="Convert run directories of the previous harness (docs/LEGACY.md) into "
        "<results>/imported/{hyp}/{stack}/{point}/r{rep}/ with requests.jsonl, "
        "telemetry.jsonl and run.json. The ingest rule reads them beside the plan's own "
        "runs, so they appear in their hypothesis's summaries, verdicts and figures. "
        "Nothing is invented: what the legacy harness did not record is null or "
        "'unavailable', and run.json lists it under imported.absent.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="SRC_RUN_DIR")
    p.add_argument("--results", type=Path, default=Path("results"), help="results directory")
    p.add_argument("--hyp", required=True, help="hypothesis id the runs belong to (H0, H2A, ...)")
    p.add_argument("--stack", help="stack name in the plan (default: config.yaml `stack`, else A)")
    p.add_argument("--point", help="point name (default: legacy-<label or directory name>)")
    p.add_argument(
        "--axis",
        action="append",
        type=_axis,
        default=[],
        metavar="KEY=VALUE",
        help="sweep axis value of the runs (e.g. load.users=8); repeatable",
    )
    p.add_argument("--force", action="store_true", help="replace runs imported before")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if not re.fullmatch(WILDCARDS["hyp"], args.hyp):
        raise SystemExit(f"spark-harness import: --hyp {args.hyp!r} is not a hypothesis id")
    try:
        for i, src in enumerate(args.runs):
            rep = None if len(args.runs) == 1 or args.point is None else i
            done = convert(
                src,
                args.results,
                args.hyp,
                args.stack,
                args.point,
                rep,
                dict(args.axis),
                args.force,
            )
            print(
                f"{done.source} -> {done.dest}: {done.requests} requests, {done.samples} samples;"
                f" absent: {', '.join(done.absent) or 'nothing'}"
            )
    except (BackfillError, OSError) as e:
        raise SystemExit(f"spark-harness import: {e}") from e
    return 0
