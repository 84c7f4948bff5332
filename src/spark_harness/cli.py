"""The ``spark-harness`` command: the entry points the workflow rules call.

Each subcommand lives with the code it runs (``register(subparsers)`` in that module),
so this file only lists them. Modules are imported when the command is parsed; keep
their top-level imports light, since every measured point starts three of them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from spark_harness import __version__

#: subcommand -> module providing ``register(subparsers)``
SUBCOMMANDS = {
    "serve": "spark_harness.serving.cli",
    "sidecar": "spark_harness.telemetry.cli",
    "loadgen": "spark_harness.measure",
    "plan": "spark_harness.plan_cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spark-harness",
        description="Measure how storage shapes LLM inference (DGX Spark harness).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
