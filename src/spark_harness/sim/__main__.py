"""``python -m spark_harness.sim --stack FILE``: run one simulator by hand.

The workflow uses ``spark-harness serve``; this entry is for trying the simulator out
and for tests that need it in its own process. It prints one JSON line with the bound
address (and the endpoint facts) once the socket is bound, then serves until SIGTERM
or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import tempfile
from pathlib import Path

from spark_harness.plan import PlanError, resolve_stack
from spark_harness.sim.config import SimConfigError
from spark_harness.sim.server import endpoint_facts, run_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spark_harness.sim", description=__doc__)
    parser.add_argument("--stack", required=True, help="stack file (kind: sim)")
    parser.add_argument("--variant", help="one of the stack file's variants")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--workdir", help="scratch directory (default: a new temporary one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        spec = resolve_stack(args.stack, args.variant)
        if spec.get("kind") != "sim":
            raise PlanError(f"{args.stack}: kind is {spec.get('kind')!r}, not sim")
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="spark-sim-"))
        workdir.mkdir(parents=True, exist_ok=True)
        facts = endpoint_facts(spec, workdir)
    except (PlanError, SimConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    print(json.dumps({"host": host, "port": port, "model": spec["model"], **facts}), flush=True)
    run_server(sock, spec, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
