"""``kind: command`` — one or more server processes started from the stack file.

A stack file's ``command`` section::

    command:
      ports: [http, {name: system, range: [20000, 32767]}]   # free ports, see below
      processes:
        - name: frontend
          argv: [python3, -m, dynamo.frontend, --http-port, "{ports.http}"]
          env: {DYN_FILE_KV: "{workdir}/kv"}
          cwd: "{workdir}"
      base_url: "http://127.0.0.1:{ports.http}"
      health: /health                     # or null: readiness is /v1/models alone
      metrics:
        - {url: "http://127.0.0.1:{ports.http}/metrics", source: dynamo_frontend}
      files:                              # written before any process starts
        engine: {path: "{workdir}/engine.yaml", yaml: {kv_cache_config: {...}}}
      g3_dir: "{workdir}/kvbm-disk"       # where KV blocks go to disk, if anywhere
      teardown: "docker rm -f trtllm-a"   # run after the processes stop (and on error)
      stop_grace_s: 10

Ports: the first is ``--port`` when given, every other a free one; ``{name, range}``
picks a free one in a range (Dynamo reads ``DYN_SYSTEM_PORT`` as a signed 16-bit number).

Strings may use ``{ports.NAME}``, ``{workdir}``, ``{model}``, ``{host}``, ``{python}``
(the interpreter running spark-harness, for engines installed beside it), ``{cwd}``
(the directory spark-harness runs in: Snakemake's working directory, the checkout, for
an engine installed in its own environment there),
``{env.NAME}`` (our environment), ``{uid}``/``{gid}`` (so containers write files we
can remove) and ``{params.NAME}``: the stack's ``params``, overridable per point
(``server.params.NAME``), which may use the other placeholders themselves. A string
that is exactly ``{params.NAME}`` takes the value with its type: a number stays a
number in ``files``, and ``null`` unsets an environment variable, which is how a
variant removes one (``docker run -e NAME`` then passes nothing). ``files`` is a
mapping so that variants merge into it; ``yaml`` content is written as YAML, ``text``
as it is (placeholders filled in both; ``{{`` and ``}}`` for literal braces).

Each process logs to its own file beside the service log, runs in its own process
group and dies with this process (``PR_SET_PDEATHSIG``), so a SIGKILLed service leaves
no server behind. Containers are the exception (the Docker daemon runs them): their
stack names them and removes them in ``teardown``, which the Snakefile's ``onerror:``
runs as well (:func:`teardown_all`); there no point is running, so a teardown may use
every placeholder but ports and the workdir.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import string
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import yaml

from spark_harness.clock import Clock
from spark_harness.contract import Endpoint, MetricsSource
from spark_harness.files import atomic_writer
from spark_harness.serving.process import (
    StackGuard,
    StopSignal,
    become_subreaper,
    child_preexec,
    free_port,
    free_port_in,
    kill_stack,
    port_is_free,
)


class CommandStackError(RuntimeError):
    """A command stack could not be started; the message says which process and why."""


@dataclass
class Launched:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    log_fh: IO[bytes]


_WHOLE_PARAM = re.compile(r"\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")


class _ShellFormatter(string.Formatter):
    """Fills placeholders of a shell command line, each value one quoted word (a list
    param: one quoted word per item), so no value can run commands (docs/SECURITY.md)."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, list):
            return " ".join(shlex.quote(format(v, format_spec)) for v in value)
        return shlex.quote(format(value, format_spec))


_SHELL = _ShellFormatter()


def _render(value: Any, ctx: dict[str, Any], shell: bool = False) -> Any:
    """Fill ``{...}`` placeholders in every string of a nested structure; in a ``shell``
    string every value is quoted."""
    if isinstance(value, str):
        whole = _WHOLE_PARAM.fullmatch(value)
        if whole and not shell and "params" in ctx and hasattr(ctx["params"], whole[1]):
            return getattr(ctx["params"], whole[1])  # keeps a number a number in YAML files
        try:
            return _SHELL.vformat(value, (), ctx) if shell else value.format(**ctx)
        except (KeyError, AttributeError, IndexError, ValueError) as e:
            raise CommandStackError(f"unknown placeholder in {value!r}: {e}") from e
    if isinstance(value, list):
        return [_render(v, ctx, shell) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, ctx, shell) for k, v in value.items()}
    return value


def _render_command(command: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """A ``command`` section rendered; a process's ``shell`` line and the ``teardown``
    are run by a shell, so their values are quoted."""
    out = _render({k: v for k, v in command.items() if k not in ("processes", "teardown")}, ctx)
    out["processes"] = [
        {k: _render(v, ctx, shell=k == "shell") for k, v in p.items()}
        for p in command.get("processes") or []
    ]
    if "teardown" in command:
        out["teardown"] = _render(command["teardown"], ctx, shell=True)
    return out


def _port_name(item: str | dict[str, Any]) -> str:
    return item if isinstance(item, str) else str(item["name"])


def allocate_ports(items: list[Any], host: str, first_port: int) -> dict[str, int]:
    """Give each named port a number: the first gets ``first_port`` if non-zero.

    An item is a name or ``{name, range: [lo, hi]}`` for servers that only accept some
    ports (Dynamo reads ``DYN_SYSTEM_PORT`` as a signed 16-bit number: below 32768).
    """
    ports: dict[str, int] = {}
    for i, item in enumerate(items):
        name = _port_name(item)
        if i == 0 and first_port:
            if not port_is_free(host, first_port):
                raise CommandStackError(f"port {first_port} on {host} is already in use")
            ports[name] = first_port
        elif isinstance(item, dict) and "range" in item:
            lo, hi = item["range"]
            port = free_port_in(host, int(lo), int(hi), exclude=set(ports.values()))
            if port is None:
                raise CommandStackError(f"no free port for {name!r} in {lo}-{hi} on {host}")
            ports[name] = port
        else:
            ports[name] = free_port(host)
    return ports


def _context(spec: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """Placeholder values: ``fields``, ``model``, ``python``, ``cwd``, ``env``, ``uid``,
    ``gid``, and ``params`` rendered with those."""
    ctx = {
        "model": spec["model"],
        "python": sys.executable,
        "cwd": os.getcwd(),
        "env": SimpleNamespace(**os.environ),
        "uid": os.getuid(),
        "gid": os.getgid(),
        **fields,
    }
    params = {}
    for k, v in (spec.get("params") or {}).items():
        # a param needing what this context lacks (ports, workdir) is left out: only a
        # string that uses it fails, naming the placeholder
        with contextlib.suppress(CommandStackError):
            params[k] = _render(v, ctx)
    return {**ctx, "params": SimpleNamespace(**params)}


def _rendered(spec: dict[str, Any], ports: dict[str, Any], workdir: Path, host: str) -> dict:
    ctx = _context(spec, ports=SimpleNamespace(**ports), workdir=str(workdir), host=host)
    rendered = _render_command({k: v for k, v in spec["command"].items() if k != "ports"}, ctx)
    rendered["ports"] = ports
    return rendered


def resolve(spec: dict[str, Any], workdir: Path, host: str, port: int) -> dict[str, Any]:
    """The ``command`` section with ports allocated and placeholders filled."""
    ports = allocate_ports(list(spec["command"].get("ports", ["http"])), host, port)
    return _rendered(spec, ports, workdir, host)


def describe(spec: dict[str, Any], workdir: Path = Path("WORKDIR")) -> str:
    """What a command stack would run, as shell lines, ports shown as ``<port:NAME>``:
    processes with their environment, files, metrics endpoints and teardown."""
    names = [_port_name(i) for i in spec["command"].get("ports", ["http"])]
    rendered = _rendered(spec, {n: f"<port:{n}>" for n in names}, workdir, "127.0.0.1")
    lines = []
    for p in rendered["processes"]:
        env = [
            f"{k}={shlex.quote(str(v))}" for k, v in (p.get("env") or {}).items() if v is not None
        ]
        cd = [f"cd {shlex.quote(str(p['cwd']))} &&"] if p.get("cwd") else []
        lines.append(f"[{p['name']}] " + " ".join([*cd, *env, shlex.join(_argv(p))]))
    for name, f in (rendered.get("files") or {}).items():
        lines.append(
            f"[file {f['path']}]\n" + textwrap.indent(_file_text(name, f).rstrip(), "    ")
        )
    if rendered.get("metrics"):
        urls = ", ".join(f"{m['url']} ({m.get('source', 'server')})" for m in rendered["metrics"])
        lines.append(f"[metrics] {urls}")
    if rendered.get("teardown"):
        lines.append(f"[teardown] {rendered['teardown']}")
    return "\n".join(lines)


def teardown_command(spec: dict[str, Any], host: str = "127.0.0.1") -> str | None:
    """A command stack's teardown outside any point (for ``onerror:``), or None."""
    teardown = (spec.get("command") or {}).get("teardown")
    if spec.get("kind") != "command" or not teardown:
        return None
    return str(_render(teardown, _context(spec, host=host), shell=True))


def teardown_all(specs: list[dict[str, Any]], workdir: Path = Path(".")) -> list[str]:
    """Run the distinct teardown commands of ``specs`` once each; return those run.

    Best effort by design: it runs after a failure, so a teardown that cannot be
    rendered or fails is reported on stderr and the others still run.
    """
    done: list[str] = []
    for spec in specs:
        try:
            command = teardown_command(spec)
        except CommandStackError as e:
            print(f"teardown of stack {spec.get('name')!r} skipped: {e}", file=sys.stderr)
            continue
        if command and command not in done:
            done.append(command)
            try:
                run_teardown(command, workdir)
            except subprocess.TimeoutExpired:
                print(f"teardown timed out: {command}", file=sys.stderr)
    return done


def _argv(proc: dict[str, Any]) -> list[str]:
    if "argv" in proc:
        return [str(a) for a in proc["argv"]]
    return ["/bin/sh", "-c", str(proc["shell"])]


def _file_text(name: str, f: dict[str, Any]) -> str:
    if "yaml" in f:
        data = f["yaml"]
        if f.get("omit_null") and isinstance(data, dict):
            # vLLM's --config turns a null into the string "None", which no option takes:
            # a variant switches an option off by setting it to null
            data = {k: v for k, v in data.items() if v is not None}
        return yaml.safe_dump(data, sort_keys=False)
    if "text" in f:
        return str(f["text"])
    raise CommandStackError(f"file {name!r}: give `yaml` or `text`")


def write_files(files: dict[str, dict[str, Any]]) -> list[Path]:
    """Write the stack's ``files`` (engine configs and the like) before the processes start."""
    written = []
    for name, f in files.items():
        path = Path(f["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        text = _file_text(name, f)
        with atomic_writer(path) as fh:
            fh.write(text)
        written.append(path)
    return written


def process_env(proc: dict[str, Any]) -> dict[str, str]:
    """Our environment with the process's ``env`` applied (``null`` unsets a variable)."""
    env = dict(os.environ)
    for k, v in (proc.get("env") or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v).lower() if isinstance(v, bool) else str(v)
    return env


def launch(
    resolved: dict[str, Any], workdir: Path, log_base: Path, guard: StackGuard | None = None
) -> list[Launched]:
    """Start every process (in ``guard``'s stack, when given); on any failure stop those
    already started and raise."""
    started: list[Launched] = []
    write_files(resolved.get("files") or {})
    try:
        for p in resolved["processes"]:
            name = p["name"]
            log = log_base.with_name(f"{log_base.stem}.{name}.log")
            log.parent.mkdir(parents=True, exist_ok=True)
            fh = open(log, "ab")  # noqa: SIM115 — lives as long as the process
            env = process_env(p) | (guard.env() if guard else {})
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
                    preexec_fn=guard.preexec if guard else child_preexec,
                    start_new_session=True,
                )
            except FileNotFoundError as e:
                fh.close()
                raise CommandStackError(
                    f"process {name!r}: command not found: {argv[0]} ({shlex.join(argv)})"
                ) from e
            started.append(Launched(name, proc, log, fh))
    except BaseException:
        stop(started, grace_s=2.0, guard=guard)
        raise
    return started


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop(procs: list[Launched], grace_s: float, guard: StackGuard | None = None) -> None:
    """SIGTERM each process group (and, with ``guard``, every process of the stack), wait
    up to ``grace_s``, then SIGKILL what is left."""
    for lp in procs:
        if lp.proc.poll() is None:
            _signal_group(lp.proc.pid, signal.SIGTERM)
    if guard is not None:
        kill_stack(guard.tag, guard.cgroup, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for lp in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            lp.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        # SIGKILL the group whether or not its leader exited: nothing of it may linger
        _signal_group(lp.proc.pid, signal.SIGKILL)
        lp.proc.wait()
        lp.log_fh.close()
    if guard is not None:
        guard.close()  # what left its group (setsid) and the sentinel


def run_teardown(command: str | None, workdir: Path) -> None:
    """Run a stack's teardown shell command (bounded: a hung teardown must not hang us)."""
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
    workdir = workdir.resolve()  # containers mount it: `docker -v` needs absolute paths
    workdir.mkdir(parents=True, exist_ok=True)
    log_base = log or (workdir / "server.log")
    try:
        resolved = resolve(spec, workdir, host, port)
    except CommandStackError as e:
        # nothing started: an endpoint naming only us lets the consumer see at once that
        # we are gone and report this message from the log, not wait out the timeout
        print(f"spark-harness serve: {e}", file=sys.stderr, flush=True)
        Endpoint(
            stack=name,
            kind="command",
            base_url="",
            model=spec["model"],
            pid=os.getpid(),
            log=str(log) if log else None,
            startup_timeout_s=float(spec.get("startup_timeout_s", 60)),
        ).write(endpoint_file)
        return 2
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
        block_tokens=spec.get("block_tokens"),
        kv_tiers=spec.get("kv_tiers"),
        prime=spec.get("prime"),
        max_num_tokens=spec.get("max_num_tokens"),
        extra={"ports": resolved["ports"], "logs": {}},
    )
    try:
        if resolved.get("g3_dir"):
            # ours before a container creates it as root; the sidecar watches its device
            Path(resolved["g3_dir"]).mkdir(parents=True, exist_ok=True)
        become_subreaper()  # orphans of the stack stay ours to reap
        guard = StackGuard()
        guard.start_sentinel()
        procs = launch(resolved, workdir, Path(log_base), guard)
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
        stop(procs, float(resolved.get("stop_grace_s", 10)), guard)
        run_teardown(resolved.get("teardown"), workdir)
    return code
