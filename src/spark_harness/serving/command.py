"""``kind: command`` — one or more server processes started from the stack file.

A stack file's ``command`` section::

    command:
      ports: [http, metrics]              # allocated free (http = --port when given)
      processes:
        - name: frontend
          argv: [python3, -m, dynamo.frontend, --http-port, "{ports.http}"]
          env: {DYN_FILE_KV: "{workdir}/kv"}
          cwd: "{workdir}"
      base_url: "http://127.0.0.1:{ports.http}"
      health: /health                     # or null: readiness is /v1/models alone
      metrics:
        - {url: "http://127.0.0.1:{ports.http}/metrics", source: dynamo_frontend}
      teardown: "docker rm -f trtllm-a"   # run after the processes stop (and on error)
      stop_grace_s: 10

Strings may use ``{ports.NAME}``, ``{workdir}``, ``{model}``, ``{host}`` and
``{params.NAME}`` (the stack's ``params``, overridable per point). Each process logs to
its own file beside the service log, runs in its own process group and dies with this
process (``PR_SET_PDEATHSIG``), so a SIGKILLed service leaves no server behind.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from spark_harness.clock import Clock
from spark_harness.contract import Endpoint, MetricsSource
from spark_harness.serving.process import StopSignal, child_preexec, free_port, port_is_free


class CommandStackError(RuntimeError):
    """A command stack could not be started; the message says which process and why."""


@dataclass
class Launched:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    log_fh: IO[bytes]


def _render(value: Any, ctx: dict[str, Any]) -> Any:
    """Fill ``{...}`` placeholders in every string of a nested structure."""
    if isinstance(value, str):
        try:
            return value.format(**ctx)
        except (KeyError, AttributeError, IndexError) as e:
            raise CommandStackError(f"unknown placeholder in {value!r}: {e}") from e
    if isinstance(value, list):
        return [_render(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, ctx) for k, v in value.items()}
    return value


def allocate_ports(names: list[str], host: str, first_port: int) -> dict[str, int]:
    """Give each named port a number: the first gets ``first_port`` if non-zero."""
    ports: dict[str, int] = {}
    for i, n in enumerate(names):
        if i == 0 and first_port:
            if not port_is_free(host, first_port):
                raise CommandStackError(f"port {first_port} on {host} is already in use")
            ports[n] = first_port
        else:
            ports[n] = free_port(host)
    return ports


def resolve(spec: dict[str, Any], workdir: Path, host: str, port: int) -> dict[str, Any]:
    """The ``command`` section with ports allocated and placeholders filled."""
    cmd = spec["command"]
    ports = allocate_ports(list(cmd.get("ports", ["http"])), host, port)
    ctx = {
        "ports": SimpleNamespace(**ports),
        "workdir": str(workdir),
        "model": spec["model"],
        "host": host,
        "params": SimpleNamespace(**spec.get("params", {})),
    }
    rendered = _render({k: v for k, v in cmd.items() if k != "ports"}, ctx)
    rendered["ports"] = ports
    return rendered


def describe(spec: dict[str, Any], workdir: Path = Path("WORKDIR")) -> str:
    """The processes a command stack would start, as shell lines (for dry runs)."""
    cmd = spec["command"]
    names = list(cmd.get("ports", ["http"]))
    ctx = {
        "ports": SimpleNamespace(**{n: f"<port:{n}>" for n in names}),
        "workdir": str(workdir),
        "model": spec["model"],
        "host": "127.0.0.1",
        "params": SimpleNamespace(**spec.get("params", {})),
    }
    rendered = _render({k: v for k, v in cmd.items() if k != "ports"}, ctx)
    lines = []
    for p in rendered["processes"]:
        env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in (p.get("env") or {}).items())
        lines.append(f"[{p['name']}] " + (env + " " if env else "") + shlex.join(_argv(p)))
    if rendered.get("teardown"):
        lines.append(f"[teardown] {rendered['teardown']}")
    return "\n".join(lines)


def _argv(proc: dict[str, Any]) -> list[str]:
    if "argv" in proc:
        return [str(a) for a in proc["argv"]]
    return ["/bin/sh", "-c", str(proc["shell"])]


def launch(resolved: dict[str, Any], workdir: Path, log_base: Path) -> list[Launched]:
    """Start every process; on any failure stop those already started and raise."""
    started: list[Launched] = []
    try:
        for p in resolved["processes"]:
            name = p["name"]
            log = log_base.with_name(f"{log_base.stem}.{name}.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            fh = open(log, "ab")  # noqa: SIM115 — lives as long as the process
            env = {**os.environ, **{k: str(v) for k, v in (p.get("env") or {}).items()}}
            cwd = Path(p.get("cwd") or workdir)
            cwd.mkdir(parents=True, exist_ok=True)
            argv = _argv(p)
            try:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=cwd,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=child_preexec,
                    start_new_session=True,
                )
            except FileNotFoundError as e:
                fh.close()
                raise CommandStackError(
                    f"process {name!r}: command not found: {argv[0]} ({shlex.join(argv)})"
                ) from e
            started.append(Launched(name, proc, log, fh))
    except BaseException:
        stop(started, grace_s=2.0)
        raise
    return started


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop(procs: list[Launched], grace_s: float) -> None:
    """SIGTERM each process group, wait up to ``grace_s``, then SIGKILL what is left."""
    for lp in procs:
        if lp.proc.poll() is None:
            _signal_group(lp.proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for lp in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            lp.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        # SIGKILL the group whether or not its leader exited: nothing of it may linger
        _signal_group(lp.proc.pid, signal.SIGKILL)
        lp.proc.wait()
        lp.log_fh.close()


def run_teardown(command: str | None, workdir: Path) -> None:
    if command:
        subprocess.run(command, shell=True, cwd=workdir, check=False, timeout=120)


def serve_command(
    spec: dict[str, Any],
    name: str,
    endpoint_file: Path,
    workdir: Path,
    host: str,
    port: int,
    log: Path | None,
) -> int:
    stop_signal = StopSignal().install()
    clock = Clock.start()
    workdir.mkdir(parents=True, exist_ok=True)
    log_base = log or (workdir / "server.log")
    resolved = resolve(spec, workdir, host, port)
    base = (
        resolved.get("base_url")
        or f"http://{host}:{resolved['ports'][next(iter(resolved['ports']))]}"
    )
    health = resolved.get("health", "/health")
    endpoint = Endpoint(
        stack=name,
        kind="command",
        base_url=base.rstrip("/"),
        model=spec["model"],
        pid=os.getpid(),
        log=str(log) if log else None,
        metrics=[MetricsSource(**m) for m in resolved.get("metrics", [])],
        health_url=(base.rstrip("/") + health) if health else None,
        startup_timeout_s=float(spec.get("startup_timeout_s", 60)),
        started_ns=clock.now_ns(),
        g3_dir=resolved.get("g3_dir"),
        block_bytes=spec.get("block_bytes"),
        max_num_tokens=spec.get("max_num_tokens"),
        extra={"ports": resolved["ports"], "logs": {}},
    )
    try:
        procs = launch(resolved, workdir, Path(log_base))
    except CommandStackError as e:
        print(f"spark-harness serve: {e}", file=sys.stderr, flush=True)
        endpoint.write(endpoint_file)  # the consumer sees our exit and reports the log
        return 127
    endpoint.pids = [lp.proc.pid for lp in procs]
    endpoint.extra["logs"] = {lp.name: str(lp.log) for lp in procs}
    endpoint.write(endpoint_file)
    code = 0
    try:
        while not stop_signal.wait(0.5):
            exited = [lp for lp in procs if lp.proc.poll() is not None]
            if exited:
                lp = exited[0]
                print(
                    f"spark-harness serve: process {lp.name!r} exited with {lp.proc.returncode}",
                    file=sys.stderr,
                    flush=True,
                )
                code = 1
                break
    finally:
        stop(procs, float(resolved.get("stop_grace_s", 10)))
        run_teardown(resolved.get("teardown"), workdir)
    return code
