"""One measured point: ``spark-harness loadgen``.

The consumer job of a point's group. It owns the order of events, so that telemetry
without load and load without telemetry are both impossible:

1. wait for the endpoint file, resolve U_work, check readiness within the stack's
   start-up timeout (the log tail is the error if the server never comes up);
2. hold the contended device's I/O scheduler where the plan sets ``qos.io_scheduler``
   (put back when the point ends), wait for the sidecar, measure the device's unloaded
   read time (:mod:`spark_harness.telemetry.probe`), record the idle baseline (no
   requests);
3. run the load phases (:func:`spark_harness.loadgen.run_load`), streaming every
   finished request to disk, with the storage-QoS perturbation running from before the
   warm-up until after the cool-down (started and stopped outside the event loop);
4. ask the sidecar to flush and keep the telemetry of the whole window;
5. write ``requests.jsonl``, ``telemetry.jsonl`` and, last, ``run.json``.

If the server dies mid-run or the run is interrupted, what was measured moves to
``results/failed/...`` with ``run.json`` saying why, and the job fails, so Snakemake
reruns exactly this point next time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib.metadata as md
import json
import logging
import os
import platform
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from spark_harness import __version__, plan_progress
from spark_harness.analysis.thresholds import MARK_ERROR_SHARE
from spark_harness.clock import Clock
from spark_harness.contract import (
    SCHEMA_VERSION,
    U_WORK_SENTINEL,
    Endpoint,
    SidecarInfo,
    wait_for_file,
)
from spark_harness.files import write_json, write_jsonl
from spark_harness.loadgen.journal import Journal
from spark_harness.secrets import redact
from spark_harness.serving.process import pid_alive, set_parent_death_signal
from spark_harness.serving.readiness import ServerNotReady, endpoint_logs, log_tail, wait_ready

SIDECAR_WAIT_S = 30.0

log = logging.getLogger("spark_harness.measure")


class PointFailed(RuntimeError):
    """The point could not be measured completely; ``code`` is the reason code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loadgen",
        help="measure one point: readiness, idle baseline, load, telemetry window",
        description="Run one point against a server and write requests.jsonl, "
        "telemetry.jsonl and run.json into --out.",
    )
    ep = p.add_mutually_exclusive_group(required=True)
    ep.add_argument("--endpoint-file", type=Path, help="endpoint file written by `serve`")
    ep.add_argument("--endpoint", help="base URL of a running server (with --model)")
    p.add_argument("--model", help="model name (with --endpoint)")
    p.add_argument("--sidecar-file", type=Path, help="sidecar file written by `sidecar`")
    sp = p.add_mutually_exclusive_group(required=True)
    sp.add_argument("--spec-json", help="the resolved point spec as JSON")
    sp.add_argument("--spec", type=Path, help="a file holding the resolved point spec")
    p.add_argument("--u-work-file", type=Path, help="H0's U_work file for this stack")
    p.add_argument("--out", type=Path, required=True, help="output directory of the point")
    p.add_argument("--failed-dir", type=Path, help="where partial data goes if the point fails")
    p.add_argument("--scratch", type=Path, help="scratch directory (QoS files)")
    p.add_argument(
        "--progress-fd",
        type=int,
        help="write the plan's progress line (spark-harness progress) to this file "
        "descriptor first; the workflow passes the job's stderr while the log takes the rest",
    )
    p.set_defaults(func=run)


# ------------------------------------------------------------------ helpers
def software_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "spark_harness": __version__}
    for dist in (
        "snakemake",
        "aiohttp",
        "httptools",
        "polars",
        "prometheus-client",
        "psutil",
        "nvidia-ml-py",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    return out


def host_facts() -> dict[str, Any]:
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "mem_total_bytes": mem,
    }


def resolve_users(spec: dict[str, Any], u_work_file: Path | None) -> dict[str, Any]:
    """Replace ``users: u_work`` with the stack's U_work from H0 (read at run time)."""
    load = spec["load"]
    if load.get("users") != U_WORK_SENTINEL:
        return spec
    if u_work_file is None:
        raise PointFailed("no_u_work", "load.users is u_work but no --u-work-file was given")
    u = json.loads(u_work_file.read_text())
    spec = {**spec, "load": {**load, "users": int(u["u_work"]), "users_from": str(u_work_file)}}
    return spec


def _server_alive(ep: Endpoint) -> bool:
    if ep.kind == "external":
        return True
    return all(pid_alive(p) for p in [ep.pid, *ep.pids])


#: how long an external server that failed a run's requests gets to answer again
EXTERNAL_RECHECK_S = 10.0


def _check_external_server(ep: Endpoint, share: float) -> None:
    """An external server has no process to watch: when the window's requests failed,
    ask it whether it is still there. One that no longer answers failed the run (the
    requests so far are kept), rather than leaving a run of connection errors that
    looks complete."""
    try:
        wait_ready(ep, timeout_s=EXTERNAL_RECHECK_S)
    except ServerNotReady as e:
        raise PointFailed(
            "server_unreachable",
            f"{share:.1%} of the load window's requests failed and the external server no "
            f"longer answers: {str(e).splitlines()[0]}",
        ) from e


async def _until_server_dies(ep: Endpoint, poll_s: float = 0.25) -> None:
    """Return when a local server process has exited (never, for an external server)."""
    while _server_alive(ep):
        await asyncio.sleep(poll_s)


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in DISK_FULL


def _first_leaf(eg: BaseExceptionGroup) -> BaseException:
    first = eg.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def _load_window_error_share(counts: dict[str, dict[str, int]]) -> float:
    measured = [c for ph, c in counts.items() if ph in ("load", "replay")]
    n = sum(c["requests"] for c in measured)
    return (sum(c["errors"] for c in measured) / n) if n else 1.0


# --------------------------------------------------------------------- main
class Point:
    """State of one point run, so a failure at any step can still save what exists."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.clock = Clock.start()
        self.out: Path = args.out
        self.spec: dict[str, Any] = (
            json.loads(args.spec_json) if args.spec_json else json.loads(args.spec.read_text())
        )
        self.run: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "hypothesis": self.spec.get("hypothesis"),
            "stack": self.spec.get("stack"),
            "point": self.spec.get("point"),
            "rep": self.spec.get("rep"),
            "spec": redact(self.spec),  # no secret in run.json (docs/SECURITY.md)
            "endpoint": None,
            "versions": software_versions(),
            "host": host_facts(),
            "clock": self.clock.to_dict(),
            "phases": {},
            "server_startup_s": None,
            "telemetry": {},
            "counts": {},
            "outcome": "failed",
            "reasons": [],
        }
        self.attempt: Path | None = None  # where a failed attempt's data went
        self.salvage_abandoned()
        self.journal = Journal(self.out / "requests.jsonl.part")
        self.telemetry_rows: list[dict[str, Any]] = []

    def attempt_dir(self) -> Path:
        """A new folder for one failed attempt of this point."""
        root = self.args.failed_dir or self.out.with_name(self.out.name + ".failed")
        dest = root / time.strftime("attempt-%Y%m%dT%H%M%S")
        n = 1
        while dest.exists():  # two failures within one second keep both
            dest = dest.with_name(f"{dest.name.split('.')[0]}.{n}")
            n += 1
        dest.mkdir(parents=True)
        return dest

    def salvage_abandoned(self) -> None:
        """Keep the requests of an attempt that was killed outright (SIGKILL of Snakemake,
        a power cut): it could not move them itself, and this attempt would overwrite them."""
        part = self.out / "requests.jsonl.part"
        if not part.exists() or not part.stat().st_size:
            return
        dest = self.attempt_dir()
        os.replace(part, dest / "requests.jsonl")
        write_jsonl(dest / "telemetry.jsonl", [])  # the sidecar's spool died with it
        write_json(dest / "run.json", {**self.run, "reasons": ["abandoned"]})
        log.warning("kept the requests of an abandoned attempt in %s", dest)

    def endpoint(self) -> Endpoint:
        a = self.args
        if a.endpoint:
            if not a.model:
                raise PointFailed("bad_arguments", "--endpoint needs --model")
            from spark_harness.serving.external import external_endpoint

            spec = {"model": a.model, "external": {"base_url": a.endpoint}}
            return external_endpoint(spec, self.spec.get("stack") or "external", None)
        timeout = float(self.spec.get("server", {}).get("startup_timeout_s", 60)) + 30
        wait_for_file(a.endpoint_file, timeout)
        return Endpoint.read(a.endpoint_file)

    def measure(self) -> None:
        ep = self.endpoint()
        self.run["endpoint"] = json.loads(json.dumps(ep, default=lambda o: o.__dict__))
        self.spec = resolve_users(self.spec, self.args.u_work_file)
        self.run["spec"] = redact(self.spec)
        # import the load generator while the server is still starting, not between the
        # idle baseline and the first request; and ingest (polars, ~0.2 s), which writes
        # the typed copies once the point ends: there it held up every point's end
        import spark_harness.ingest
        import spark_harness.loadgen  # noqa: F401

        waited = wait_ready(ep)
        log.info("server %s ready after %.2f s", ep.base_url, waited)
        self.run["server_startup_s"] = (self.clock.now_ns() - ep.started_ns) / 1e9
        self.run["ready_wait_s"] = waited
        if ep.prime:
            self.run["prime"] = self.prime(ep)
        self.preflight(ep)
        with self.io_scheduler(ep):
            self.measure_ready(ep)

    def prime(self, ep: Endpoint) -> dict:
        """The stack's priming waves (serving/prime.py), before the idle baseline."""
        from spark_harness.serving.prime import PrimeFailed, prime

        assert ep.prime is not None
        try:
            done = prime(ep, **ep.prime)
        except PrimeFailed as e:
            raise PointFailed("prime_failed", str(e)) from e
        log.info("primed %s: %s", ep.base_url, done["waves"])
        return done

    def measure_ready(self, ep: Endpoint) -> None:
        """The phases against a ready server: idle baseline, warm-up, load, cool-down."""
        from spark_harness.telemetry import devices

        info = self.sidecar()
        self.run["host"]["devices"] = devices.facts([p for p in (ep.g3_dir, str(self.out)) if p])
        self.cold_start(ep)

        qos = self.qos(ep)
        if qos is not None:
            # lay out the contention files before the idle baseline, not inside it
            self.run["qos"] = {"prepared": qos.prepare()}
        # the device's unloaded read time, a read await's baseline: the idle phase
        # completes no reads to give one, and its own reads are a baseline of their own
        from spark_harness.telemetry import probe

        self.run["read_probe"] = probe.record(self.qos_target(ep))
        log.info("read probe: %s", self.run["read_probe"])

        phases = self.spec["phases"]
        log.info("idle baseline %.1f s", float(phases.get("idle_s", 0)))
        t_idle = self.clock.now_ns()
        time.sleep(float(phases.get("idle_s", 0)))
        self.run["phases"]["idle"] = [t_idle, self.clock.now_ns()]

        def on_phase(name: str, edge: str, t_ns: int) -> None:
            span = self.run["phases"].setdefault(name, [t_ns, None])
            span[0 if edge == "start" else 1] = t_ns

        if qos is not None:
            # before the warm-up, outside the load generator's event loop: starting fio
            # takes a blocking moment that, inside the loop, held up every request in
            # flight at the load window's first edge, and its start-up transient belongs
            # to the warm-up, not to the window
            self.run["qos"]["started"] = qos.start()
        try:
            from spark_harness.loadgen import eventloop

            gap_ns = eventloop.gap_for(ep.base_url)
            self.run["loadgen"] = {"poll_gap_us": gap_ns / 1000}
            returned = eventloop.run(self.load(ep, on_phase), gap_ns)
            self.run["phases"].update({k: list(v) for k, v in returned.items()})
        finally:
            if qos is not None:  # after the cool-down: the window's last requests ran under it
                self.run["qos"]["stopped"] = qos.stop()
            self.run["counts"] = self.journal.counts
            self.collect_telemetry(info)

        reasons = []
        if not _server_alive(ep):
            raise PointFailed("server_died", "the server exited during the run")
        share = _load_window_error_share(self.journal.counts)
        if share > MARK_ERROR_SHARE:
            if ep.kind == "external":
                _check_external_server(ep, share)
            reasons.append(f"errors_over_1pct:{share:.3f}")
        self.run["outcome"] = "marked" if reasons else "ok"
        self.run["reasons"] = reasons

    async def load(
        self, ep: Endpoint, on_phase: Callable[[str, str, int], None]
    ) -> dict[str, list[int]]:
        """Run the load phases; stop at once if the server dies (what was measured stays)."""
        from spark_harness.loadgen import run_load

        load = asyncio.create_task(run_load(ep, self.spec, self.clock, self.journal, on_phase))
        watch = asyncio.create_task(_until_server_dies(ep))
        done, _ = await asyncio.wait({load, watch}, return_when=asyncio.FIRST_COMPLETED)
        if load in done:
            watch.cancel()
            try:
                return load.result()
            except ValueError as e:  # LoadError, WorkloadError, InputError: nothing was sent
                raise PointFailed("bad_workload", str(e)) from e
            except ExceptionGroup as eg:  # a record could not be written (a full disk)
                full = eg.subgroup(_is_disk_full)
                if full is None:
                    raise
                raise PointFailed("disk_full", str(_first_leaf(full))) from eg
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        raise PointFailed("server_died", "the server exited during the load phases")

    def sidecar(self) -> SidecarInfo | None:
        if not self.args.sidecar_file:
            self.telemetry_rows.append(
                {
                    "kind": "unavailable",
                    "t_ns": self.clock.now_ns(),
                    "source": "sidecar",
                    "reason": "no sidecar for this run (--sidecar-file not given)",
                }
            )
            return None
        from spark_harness.telemetry.window import wait_sampling

        wait_for_file(self.args.sidecar_file, SIDECAR_WAIT_S)
        info = SidecarInfo.read(self.args.sidecar_file)
        wait_sampling(info, SIDECAR_WAIT_S)
        return info

    def preflight(self, ep: Endpoint) -> None:
        """Reject prompts longer than the engine's limit before sending any."""
        limit = ep.max_num_tokens
        wl = self.spec["workload"]
        need = int(wl.get("context_tokens", 0))
        if limit and need > limit:
            raise PointFailed(
                "prompt_over_engine_limit",
                f"workload.context_tokens={need} exceeds the "
                f"engine's max_num_tokens={limit} (stack {ep.stack}); a real engine would "
                "reject or drop these requests",
            )

    def cold_start(self, ep: Endpoint) -> None:
        if self.spec["workload"].get("adapter_cache") != "cold":
            return
        from spark_harness.telemetry.cache import drop_page_cache

        lora_dir = (ep.extra or {}).get("lora_dir")
        paths = sorted(Path(lora_dir).glob("*")) if lora_dir else []
        self.run["cold_start"] = drop_page_cache(paths)

    def qos_target(self, ep: Endpoint) -> Path:
        """Where contention goes: the filesystem holding G3 (or, for a stack without one,
        the point's scratch directory on the results device)."""
        return Path(ep.g3_dir) if ep.g3_dir else self.args.scratch or (self.out / "qos-scratch")

    @contextlib.contextmanager
    def io_scheduler(self, ep: Endpoint) -> Iterator[None]:
        """Hold the contended device's I/O scheduler for the point, on every point of a
        hypothesis that sets ``qos.io_scheduler`` (its unperturbed points too)."""
        name = (self.spec.get("qos") or {}).get("io_scheduler")
        if name is None:
            yield
            return
        from spark_harness.telemetry.iosched import held_scheduler

        with held_scheduler(self.qos_target(ep), name) as record:
            self.run["io_scheduler"] = record
            yield

    def qos(self, ep: Endpoint) -> Any:
        q = self.spec.get("qos") or {}
        if q.get("profile", "none") == "none":
            return None
        from spark_harness.telemetry.qos import Perturbation, ToolMissing

        try:
            return Perturbation(
                q["profile"],
                q.get("tool", "auto"),
                self.qos_target(ep),
                self.out,
                q.get("latency_target_ms"),
            )
        except ToolMissing as e:
            raise PointFailed("qos_tool_missing", str(e)) from e

    def collect_telemetry(self, info: SidecarInfo | None) -> None:
        if info is None:
            return
        from spark_harness.telemetry.window import collect

        start = self.run["phases"].get("idle", [self.clock.now_ns()])[0]
        rows, meta = collect(info, start, self.clock.now_ns())
        self.telemetry_rows.extend(rows)
        self.run["telemetry"] = meta

    def finish(self) -> None:
        """Write the contract files; run.json last, since it marks the point complete."""
        os.replace(self.journal.path, self.out / "requests.jsonl")
        write_jsonl(self.out / "telemetry.jsonl", self.telemetry_rows)
        from spark_harness.ingest import write_raw_copies

        write_raw_copies(self.out)  # the typed copies ingest reads instead of the JSONL
        write_json(self.out / "run.json", self.run)

    def save_failed(self, reason: str) -> Path:
        """Move what was measured to the failed-attempts folder, with the reason."""
        self.run["outcome"] = "failed"
        self.run["reasons"] = [reason]
        self.run["counts"] = self.journal.counts
        dest = self.attempt = self.attempt_dir()
        # renames and unlinks first: they need no space, so a full disk keeps them
        if self.journal.path.exists():
            os.replace(self.journal.path, dest / "requests.jsonl")
        for name in (
            "requests.jsonl",
            "requests.parquet",
            "telemetry.jsonl",
            "telemetry.parquet",
            "run.json",
        ):
            with contextlib.suppress(FileNotFoundError):
                (self.out / name).unlink()
        for extra in self.out.glob("qos-*"):
            shutil.move(str(extra), dest / extra.name)
        write_jsonl(dest / "telemetry.jsonl", self.telemetry_rows)
        write_json(dest / "run.json", self.run)
        return dest


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    if args.progress_fd is not None:
        plan_progress.report(args.progress_fd)
    set_parent_death_signal()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    point = Point(args)
    try:
        point.measure()
        point.finish()
    except KeyboardInterrupt as e:
        dest = _save_failed(point, f"interrupted:{str(e) or 'SIGINT'}")
        print(f"spark-harness loadgen: interrupted; partial data kept in {dest}", file=sys.stderr)
        return 130
    except (PointFailed, ServerNotReady, TimeoutError) as e:
        code = {ServerNotReady: "server_not_ready", TimeoutError: "service_file_timeout"}.get(
            type(e), getattr(e, "code", "failed")
        )
        dest = _save_failed(point, code)
        print(f"spark-harness loadgen: point failed: {e}", file=sys.stderr)
        _tell(args.progress_fd, code, e, dest)
        if isinstance(e, PointFailed) and point.run.get("endpoint"):
            ep = Endpoint(**{**point.run["endpoint"], "metrics": []})
            print(log_tail(endpoint_logs(ep)), file=sys.stderr)
        print(f"(partial data kept in {dest})", file=sys.stderr)
        return 1
    except OSError as e:
        if not _is_disk_full(e):
            raise
        dest = _save_failed(point, "disk_full")
        print(f"spark-harness loadgen: point failed: disk_full: {e}", file=sys.stderr)
        print(f"(partial data kept in {dest})", file=sys.stderr)
        return 1
    return 0


def _tell(fd: int | None, code: str, error: BaseException, dest: Path) -> None:
    """Say why the point failed where the person running the workflow sees it (the job's
    own stderr, ``--progress-fd``; the point's log takes the rest, log tails included)."""
    if fd is None:
        return
    first = (str(error).splitlines() or [""])[0]
    line = (
        f"spark-harness loadgen: point failed ({code}): {first}\n"
        f"  partial data kept in {dest}; the point's log has the rest\n"
    )
    with contextlib.suppress(OSError):
        os.write(fd, line.encode())


def _save_failed(point: Point, reason: str) -> Path:
    """Move what was measured aside; on a full disk, say where the requests still are."""
    try:
        return point.save_failed(reason)
    except OSError as e:
        if not _is_disk_full(e):
            raise
        print(f"spark-harness loadgen: could not record the failed attempt: {e}", file=sys.stderr)
        return point.attempt or point.out
