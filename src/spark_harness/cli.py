"""The ``spark-harness`` command: the entry points the workflow rules call.

Each subcommand lives with the code it runs (``register(subparsers)`` in that module),
so this file only lists them. Only the chosen subcommand's module is imported (all of
them for ``--help``): every measured point starts three of these processes at once on
a small machine, and start-up time is time the point waits.
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
    "preflight": "spark_harness.preflight",
    "progress": "spark_harness.plan_progress",
    "import": "spark_harness.backfill",
    "restore": "spark_harness.archive",
    "verdicts": "spark_harness.verdict_table",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spark-harness",
        description="Measure how storage shapes LLM inference (DGX Spark harness).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
