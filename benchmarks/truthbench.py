"""What the load generator's ground-truth benchmarks share: their command line, the
placement of client and server on CPUs, and the head of their Markdown table."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from spark_harness_testkit.groundtruth import pin_apart


def start(doc: str, columns: Sequence[str]) -> tuple[argparse.Namespace, int | None]:
    """Parse ``--load-s``/``--pin``, pin the client if asked, print the load average and
    the table head; return the arguments and the CPU for the ground-truth server."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--load-s", type=float, default=5.0)
    ap.add_argument("--pin", action="store_true", help="client and server on fixed CPUs")
    args = ap.parse_args()
    server_cpu = pin_apart() if args.pin else None
    print(f"load average at start: {os.getloadavg()[0]:.2f}; pinned: {args.pin}")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    return args, server_cpu
