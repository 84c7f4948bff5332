"""``python -m spark_harness.telemetry sidecar ...``: the sidecar without the other subcommands.

Same arguments as ``spark-harness sidecar``; useful where only the telemetry package is
wanted (tests, a sidecar started by hand next to an external server).
"""

from __future__ import annotations

import argparse
import sys

from spark_harness.telemetry import cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_harness.telemetry")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
