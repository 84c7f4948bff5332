"""From the validated config to the list of measured points.

The plan is pure data: which (hypothesis, stack, point, repetition) runs exist, and for
each the *resolved point specification*: workload, load, phases, telemetry, storage QoS,
SLOs, seed, and the fully merged server spec (stack file + variant + point overrides).
The Snakefile hands each loadgen job exactly its spec as ``params``, so editing one
hypothesis's sweep, or one stack file, reruns only the points whose spec changed.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from spark_harness import layout, registry
from spark_harness.contract import U_WORK_SENTINEL
from spark_harness.schemas import schema_path
from spark_harness.secrets import secret_paths
from spark_harness.serving.budget import BudgetError, check_budget

POINT_SECTIONS = ("workload", "load", "phases", "telemetry", "qos", "server")
U_WORK_SOURCE = "H0"
#: the Snakefile's own ``configfile:``, which every config file without a ``track`` is
#: layered over (relative to the workflow root)
DEFAULT_CONFIG = Path("config/config.yaml")
#: seconds a server of each stack kind takes to come up, for the plan's expected duration
#: (a real engine loads its model; run.json records the measured ``server_startup_s``)
STARTUP_ESTIMATE_S = {"sim": 2.0, "external": 0.0, "command": 60.0}
#: the phases a point waits through, in order (spec ``phases``)
TIMED_PHASES = ("idle_s", "warmup_s", "load_s", "cooldown_s")
#: docs/PLAN.md's plan; config/plan_v2.5.yaml sets ``track: v2.5`` (docs/LEGACY.md)
DEFAULT_TRACK = "v3"


class PlanError(ValueError):
    """The plan or a stack file is invalid; the message names the offending key."""


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base``; nested mappings merge, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating levels as needed."""
    parts = key.split(".")
    for p in parts[:-1]:
        d = d.setdefault(p, {})
    d[parts[-1]] = value


#: the most values a plan may hold once YAML aliases are expanded: a plan is a few
#: hundred; a few hundred bytes of nested aliases expand to millions, which validation
#: and every copy of the plan would walk (docs/SECURITY.md)
MAX_CONFIG_NODES = 100_000


def check_size(value: Any, what: str) -> None:
    """Raise PlanError when ``value`` holds more than ``MAX_CONFIG_NODES`` values counted
    as expanded (an alias counts each time it is used); the walk stops at the limit."""
    seen, stack = 0, [value]
    while stack:
        v = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_NODES:
            raise PlanError(
                f"{what}: more than {MAX_CONFIG_NODES} values once YAML aliases are expanded"
            )
        if isinstance(v, Mapping):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError as e:
        raise PlanError(f"file not found: {path}") from e
    except yaml.YAMLError as e:
        raise PlanError(f"{path}: not valid YAML: {e}") from e


@functools.cache
def _validator(name: str, definition: str | None = None) -> jsonschema.Draft202012Validator:
    """One validator per packaged schema (or one of its ``$defs``): every point resolves
    its stack, and Snakemake builds the plan in every job it starts, so the schema is
    parsed once per process."""
    schema = yaml.safe_load(schema_path(name).read_text())
    if definition is not None:
        schema = {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(schema)


def _where(err: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in err.absolute_path) or "(top level)"


def validate(instance: Any, schema_name: str, what: str, definition: str | None = None) -> None:
    """Validate against a packaged schema (or one of its ``$defs``); raise PlanError
    naming the first bad key."""
    errors = sorted(
        _validator(schema_name, definition).iter_errors(instance),
        key=lambda e: list(e.absolute_path),
    )
    # a bad value under a section checked with `unevaluatedProperties` also fails that
    # check (nothing evaluated the section's keys), which would call valid keys unknown
    own = [e for e in errors if e.validator != "unevaluatedProperties"]
    errors = own or errors
    if errors:
        lines = [f"{what}: {_where(e)}: {e.message}" for e in errors[:5]]
        raise PlanError("invalid " + what + "\n  " + "\n  ".join(lines))


def resolve_stack(
    file: str | Path,
    variant: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """Read a stack file, apply a variant and point overrides, and validate the result.

    An override's ``sim`` block holds simulator settings: it applies to ``kind: sim``
    stacks only, so a plan layered over the demo plan (config/spark.yaml) does not carry
    the demo's simulated tier sizes into a real server's spec."""
    path = Path(file)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    raw = _load_yaml(path)
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: a stack file must be a mapping")
    check_size(raw, f"stack file {path}")
    variants = raw.pop("variants", {}) or {}
    spec = raw
    if variant is not None:
        if variant not in variants:
            raise PlanError(
                f"{path}: variant {variant!r} not defined (have: {', '.join(variants) or 'none'})"
            )
        spec = deep_merge(spec, variants[variant])
        spec["variant"] = variant
    if overrides and spec.get("kind") != "sim":
        overrides = {k: v for k, v in overrides.items() if k != "sim"}
    if overrides:
        spec = deep_merge(spec, overrides)
    check = {k: v for k, v in spec.items() if k != "variant"}
    validate(check, "stack", f"stack file {path}" + (f" (variant {variant})" if variant else ""))
    return spec


@dataclass(frozen=True)
class Run:
    """One measured (hypothesis, stack, point, repetition)."""

    hyp: str
    stack: str
    point: str
    rep: int
    spec: dict[str, Any] = field(compare=False, hash=False, repr=False)

    @property
    def wildcards(self) -> dict[str, Any]:
        return {"hyp": self.hyp, "stack": self.stack, "point": self.point, "rep": self.rep}

    def spec_json(self) -> str:
        return json.dumps(self.spec, sort_keys=True, separators=(",", ":"))

    @property
    def phases_s(self) -> float:
        """Seconds of the point's timed phases (a finite workload such as ``rehydrate``
        runs until its requests end: then this is a lower bound)."""
        return sum(float(self.spec["phases"].get(k, 0)) for k in TIMED_PHASES)

    @property
    def startup_estimate_s(self) -> float:
        return STARTUP_ESTIMATE_S.get(self.spec["server"]["kind"], 0.0)

    @property
    def expected_s(self) -> float:
        """Seconds the point should take, its server's start-up included."""
        return self.phases_s + self.startup_estimate_s


def _fmt_value(v: Any) -> str:
    s = str(v).lower() if isinstance(v, bool) else str(v)
    return "".join(c if c.isalnum() or c in "-." else "-" for c in s)


def results_dir(config: Mapping[str, Any]) -> str:
    """The plan's ``results_dir``, normalised (``./r/`` is ``r``): the workflow names its
    files by joining strings, so two spellings of one folder would be two DAGs."""
    raw = str(config.get("results_dir", "results"))
    norm = os.path.normpath(raw)
    if norm in (".", "..") or norm.startswith("../"):
        raise PlanError(f"results_dir: {raw!r} is the checkout or outside it: name a folder")
    return norm


class Plan:
    """The expanded experiment plan."""

    def __init__(self, config: Mapping[str, Any], base_dir: str | Path = ".") -> None:
        check_size(config, "config")
        validate(dict(config), "config", "config")
        self.config = dict(config)
        self.base_dir = Path(base_dir)
        self.results = results_dir(self.config)
        #: which plan the hypothesis ids belong to, hence which evaluators and figures
        self.track = str(self.config.get("track", DEFAULT_TRACK))
        self.hypotheses: dict[str, dict[str, Any]] = dict(self.config["hypotheses"])
        #: hypotheses this plan cannot decide -> why (run by no target)
        self.not_applicable: dict[str, str] = dict(self.config.get("not_applicable") or {})
        self._stack_cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._runs: dict[str, list[Run]] = {}
        self._check_references()
        for hyp in self.hypotheses:
            self._runs[hyp] = list(self._expand(hyp))

    # ----------------------------------------------------------------- queries
    def measured(self) -> list[str]:
        return [h for h, c in self.hypotheses.items() if "analytical" not in c]

    def analytical(self) -> list[str]:
        return [h for h, c in self.hypotheses.items() if "analytical" in c]

    def stacks_of(self, hyp: str) -> list[str]:
        cfg = self.hypotheses[hyp]
        if "analytical" in cfg:
            return []
        return list(cfg["stacks"])

    def sources_of(self, hyp: str) -> list[tuple[str, str]]:
        """(hypothesis, stack) pairs whose ingested data a hypothesis reads."""
        cfg = self.hypotheses[hyp]
        if "analytical" in cfg:
            return [(h, s) for h in cfg["analytical"]["from"] for s in self.stacks_of(h)]
        return [(hyp, s) for s in self.stacks_of(hyp)]

    def check_names(self, hyps: Iterable[str] = (), stacks: Iterable[str] = ()) -> None:
        """Fail on a hypothesis or stack the plan lacks, naming the valid ones."""
        for what, names, valid in (
            ("hypothesis", hyps, list(self.hypotheses)),
            ("stack", stacks, list(self.config["stacks"])),
        ):
            unknown = [n for n in names if n not in valid]
            if unknown:
                raise PlanError(
                    f"unknown {what} {', '.join(unknown)}: the plan has {', '.join(valid)}"
                )

    def runs(self, hyp: str | None = None, stack: str | None = None) -> list[Run]:
        self.check_names([hyp] if hyp else [], [stack] if stack else [])
        hyps = [hyp] if hyp else list(self._runs)
        return [r for h in hyps for r in self._runs[h] if stack is None or r.stack == stack]

    def run(self, hyp: str, stack: str, point: str, rep: int | str) -> Run:
        for r in self._runs.get(hyp, []):
            if r.stack == stack and r.point == point and r.rep == int(rep):
                return r
        raise PlanError(f"no such point in the plan: {hyp}/{stack}/{point}/r{rep}")

    def needs_u_work(self, run: Run) -> bool:
        return run.spec["load"].get("users") == U_WORK_SENTINEL

    def runs_for(self, hyps: Iterable[str]) -> list[Run]:
        """The runs a target of ``hyps`` measures, in plan order: their own, an
        analytical one's sources', and, for points run at U_work, the runs of U_work's
        source on that stack (what Snakemake runs for it)."""
        pairs: set[tuple[str, str]] = set()
        todo = [pair for h in hyps for pair in self.sources_of(h)]
        while todo:
            hyp, stack = todo.pop()
            if (hyp, stack) in pairs:
                continue
            pairs.add((hyp, stack))
            if any(self.needs_u_work(r) for r in self.runs(hyp, stack)):
                todo.append((U_WORK_SOURCE, stack))
        return [r for r in self.runs() if (r.hyp, r.stack) in pairs]

    def previous_in_order(self, run: Run) -> Run | None:
        """For ``order: alternate``, the run that must finish before this one starts."""
        cfg = self.hypotheses[run.hyp]
        if cfg.get("order", "any") not in ("alternate", "listed"):
            return None
        stacks = self.stacks_of(run.hyp)
        if cfg["order"] == "alternate" and run.rep % 2 == 1:
            stacks = stacks[::-1]
        i = stacks.index(run.stack)
        return None if i == 0 else self.run(run.hyp, stacks[i - 1], run.point, run.rep)

    def path(self, pattern: str, **fields: object) -> Path:
        return layout.path(self.results, pattern, **fields)

    # --------------------------------------------------------------- building
    def _check_references(self) -> None:
        known = registry.load(self.track)  # the ids of the plan's track, plugins included
        for key, ids in (("hypotheses", self.hypotheses), ("not_applicable", self.not_applicable)):
            if unknown := [h for h in ids if h not in known]:
                raise PlanError(
                    f"{key}: {', '.join(unknown)} not in the {self.track} registry"
                    f" (known: {', '.join(known)})"
                )
        if both := [h for h in self.not_applicable if h in self.hypotheses]:
            raise PlanError(f"not_applicable: {', '.join(both)} also under `hypotheses`")
        stacks = self.config["stacks"]
        for hyp, cfg in self.hypotheses.items():
            if "analytical" in cfg:
                if "stacks" in cfg or "sweep" in cfg:
                    raise PlanError(f"hypotheses.{hyp}: analytical hypotheses take no stacks/sweep")
                for src in cfg["analytical"]["from"]:
                    if src not in self.hypotheses:
                        raise PlanError(
                            f"hypotheses.{hyp}.analytical.from: {src} is not in the plan"
                        )
                    if "analytical" in self.hypotheses[src]:
                        raise PlanError(
                            f"hypotheses.{hyp}.analytical.from: {src} is itself analytical"
                        )
                continue
            if "stacks" not in cfg:
                raise PlanError(f"hypotheses.{hyp}.stacks: required for a measured hypothesis")
            for s in cfg["stacks"]:
                if s not in stacks:
                    raise PlanError(
                        f"hypotheses.{hyp}.stacks: {s!r} is not defined under `stacks` "
                        f"(defined: {', '.join(stacks)})"
                    )
            names = [ax.get("name") or ax["key"].rsplit(".", 1)[-1] for ax in cfg.get("sweep", [])]
            if len(set(names)) != len(names):
                raise PlanError(f"hypotheses.{hyp}.sweep: axis names must differ: {names}")

    def _stack(self, name: str) -> tuple[str, str | None]:
        ref = self.config["stacks"][name]
        return ref["file"], ref.get("variant")

    def _expand(self, hyp: str) -> Iterator[Run]:
        cfg = self.hypotheses[hyp]
        if "analytical" in cfg:
            return
        defaults = self.config["defaults"]
        base: dict[str, Any] = {}
        for section in POINT_SECTIONS:
            merged = deep_merge(defaults.get(section, {}), cfg.get(section, {}))
            # a hypothesis that changes the workload kind does not inherit the other
            # kind's keys from the defaults
            if section == "workload" and "kind" in cfg.get("workload", {}):
                merged = copy.deepcopy(cfg["workload"])
            base[section] = merged
        reps = int(cfg.get("repetitions", defaults["repetitions"]))
        seed0 = int(cfg.get("seed", defaults.get("seed", 0)))
        axes = cfg.get("sweep", [])
        combos = itertools.product(*[ax["values"] for ax in axes]) if axes else [()]
        points: dict[str, tuple[Any, ...]] = {}  # point name -> its values
        for combo in combos:
            settings = copy.deepcopy(base)
            labels = []
            axis_values: dict[str, Any] = {}
            for ax, value in zip(axes, combo, strict=True):
                set_dotted(settings, ax["key"], value)
                labels.append(
                    f"{ax.get('name') or ax['key'].rsplit('.', 1)[-1]}-{_fmt_value(value)}"
                )
                axis_values[ax["key"]] = value
            _check_swept(hyp, axis_values, settings)
            point = "_".join(labels) or "base"
            if point in points:
                raise PlanError(
                    f"hypotheses.{hyp}.sweep: values {points[point]} and {combo} both make "
                    f"point {point!r}: one would overwrite the other's files"
                )
            points[point] = combo
            _check_qos(hyp, point, settings["qos"])
            if settings["load"].get("users") == U_WORK_SENTINEL:
                self._check_u_work(hyp, cfg)
            for stack in cfg["stacks"]:
                file, variant = self._stack(stack)
                server = self._resolve_server(hyp, stack, file, variant, settings["server"], axes)
                _check_engine_limit(hyp, stack, point, settings["workload"], server)
                try:
                    check_budget(server)
                except BudgetError as e:
                    raise PlanError(f"hypotheses.{hyp} point {point} (stack {stack}): {e}") from e
                for rep in range(reps):
                    spec = {k: copy.deepcopy(settings[k]) for k in POINT_SECTIONS if k != "server"}
                    spec.update(
                        hypothesis=hyp,
                        stack=stack,
                        point=point,
                        rep=rep,
                        seed=seed0 + rep,
                        axes=axis_values,
                        server=server,
                    )
                    yield Run(hyp, stack, point, rep, spec)

    def _resolve_server(
        self,
        hyp: str,
        stack: str,
        file: str,
        variant: str | None,
        overrides: dict[str, Any],
        axes: list[dict[str, Any]],
    ) -> dict[str, Any]:
        try:
            server = resolve_stack(file, variant, overrides, self.base_dir)
        except PlanError as e:
            swept = [ax["key"] for ax in axes if ax["key"].startswith("server.")]
            keys = f", sweep key {', '.join(swept)}" if swept else ""
            raise PlanError(f"hypotheses.{hyp} (stack {stack}{keys}): {e}") from e
        if found := secret_paths(server):
            # a point's spec is on command lines, in Snakemake's records and in run.json
            raise PlanError(
                f"hypotheses.{hyp} (stack {stack}): server.{found[0]} is a secret written "
                "into the plan: name where it lives instead (sim.api_key_env or "
                "sim.api_key_file; docs/SECURITY.md)"
            )
        return server

    def _check_u_work(self, hyp: str, cfg: Mapping[str, Any]) -> None:
        src = self.hypotheses.get(U_WORK_SOURCE)
        if src is None or "analytical" in src:
            raise PlanError(
                f"hypotheses.{hyp}.load.users: `u_work` needs {U_WORK_SOURCE} in the plan"
            )
        missing = [s for s in cfg["stacks"] if s not in src["stacks"]]
        if missing:
            raise PlanError(
                f"hypotheses.{hyp}.load.users: `u_work` needs {U_WORK_SOURCE} to run "
                f"stack(s) {', '.join(missing)}"
            )


def _check_qos(hyp: str, point: str, qos: Mapping[str, Any]) -> None:
    """A latency target is the builtin generator's (spark_harness.telemetry.qos)."""
    if qos.get("latency_target_ms") is not None and qos.get("tool") == "fio":
        raise PlanError(
            f"hypotheses.{hyp} point {point}: qos.latency_target_ms runs the builtin I/O "
            "generator; qos.tool fio cannot hold a latency target (set auto or builtin)"
        )


def _check_swept(hyp: str, axes: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
    """A sweep key is set by path, so a typo (``load.userz``) would add a key the run
    ignores: each swept point is validated like the config, naming the axis. Server keys
    are validated with the stack file they are merged into."""
    if not axes:
        return
    point = {k: v for k, v in settings.items() if k != "server"}
    errors = list(_validator("config", "point_settings").iter_errors(point))
    if errors:
        err = min(errors, key=lambda e: list(e.absolute_path))
        where = _where(err)
        keys = [k for k in axes if k == where or k.startswith(where + ".")] or list(axes)
        raise PlanError(
            f"hypotheses.{hyp}.sweep: key {', '.join(keys)} "
            f"(= {', '.join(repr(axes[k]) for k in keys)}): {where}: {err.message}"
        )


def _check_engine_limit(
    hyp: str, stack: str, point: str, workload: Mapping[str, Any], server: Mapping[str, Any]
) -> None:
    """A prompt over a stack's declared ``max_num_tokens`` fails the plan, before any
    server starts (a real engine rejects it, and a Dynamo worker may even unregister)."""
    limit = server.get("max_num_tokens")
    need = workload.get("context_tokens")
    if limit and isinstance(need, int) and need > limit:
        raise PlanError(
            f"hypotheses.{hyp} point {point} (stack {stack}): workload.context_tokens={need} "
            f"exceeds the engine's max_num_tokens={limit}"
        )


def load_config(path: str | Path) -> dict[str, Any]:
    """Read one config file (YAML); :func:`layered_config` layers several."""
    data = _load_yaml(Path(path))
    if not isinstance(data, dict):
        raise PlanError(f"{path}: the config must be a mapping")
    return data


def layered_config(files: Sequence[str | Path], root: str | Path) -> dict[str, Any]:
    """The config Snakemake builds from ``--configfile`` files: merged in order and, as
    the Snakefile does, over ``config/config.yaml`` unless one of them names its
    ``track`` (a whole plan of its own)."""
    over: dict[str, Any] = {}
    for f in files:
        over = deep_merge(over, load_config(f))
    if "track" in over:
        return over
    return deep_merge(load_config(Path(root) / DEFAULT_CONFIG), over)
