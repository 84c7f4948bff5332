"""``spark-harness serve``: bring one stack up and keep it up until SIGTERM."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from spark_harness.serving.process import PortInUseError, set_parent_death_signal


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="bring a stack up and keep it up until SIGTERM",
        description="Bring a stack up (sim, command or external), write its endpoint file "
        "as soon as the port is known, and serve until SIGTERM or SIGINT.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--stack", type=Path, help="stack file (config/stacks/*.yaml)")
    src.add_argument(
        "--stack-json", help="a resolved stack spec as JSON (what the workflow passes)"
    )
    p.add_argument("--variant", help="one of the stack file's variants (e.g. B2)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a stack key, e.g. --set sim.g2_blocks=64 (value parsed as YAML)",
    )
    p.add_argument("--name", help="stack label in the endpoint file (default: the spec's name)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    p.add_argument(
        "--endpoint-file",
        type=Path,
        default=Path("endpoint.json"),
        help="where to write the endpoint (URL, model, pid) once the port is known "
        "(default endpoint.json)",
    )
    p.add_argument("--workdir", type=Path, default=Path("serve-work"), help="scratch directory")
    p.add_argument("--log", type=Path, help="this service's log file (shown when not ready)")
    p.set_defaults(func=run)


def _overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    from spark_harness.plan import PlanError, set_dotted

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise PlanError(f"--set expects KEY=VALUE, got {pair!r}")
        set_dotted(out, key, yaml.safe_load(value))
    return out


def run(args: argparse.Namespace) -> int:
    # If Snakemake (our parent) is SIGKILLed, take the server down with it.
    set_parent_death_signal()
    from spark_harness.serving import serve

    try:
        if args.stack_json:
            spec = json.loads(args.stack_json)
        else:
            # validation (jsonschema) is only needed for a stack file given by hand; the
            # workflow passes specs the plan already validated
            from spark_harness.plan import resolve_stack

            spec = resolve_stack(args.stack, args.variant, _overrides(args.set))
    except (ValueError, json.JSONDecodeError) as e:
        print(f"spark-harness serve: {e}", file=sys.stderr)
        return 2
    try:
        return serve(
            spec,
            name=args.name or spec.get("name", "stack"),
            endpoint_file=args.endpoint_file,
            workdir=args.workdir,
            host=args.host,
            port=args.port,
            log=args.log,
        )
    except PortInUseError as e:
        print(f"spark-harness serve: {e}", file=sys.stderr)
        return 98
