"""``spark-harness sidecar``: the telemetry service of one measured point.

Started by Snakemake together with the server and the load generator, it waits for the
server's endpoint file, picks the devices to watch, starts spooling samples (the idle
baseline comes first), writes its sidecar file, and samples until SIGTERM/SIGINT.
SIGUSR1 asks for an immediate sample and a flush marker (see
:func:`spark_harness.telemetry.window.collect`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from spark_harness import contract
from spark_harness.clock import Clock
from spark_harness.telemetry.devices import BlockDevice, DeviceNotFound, device_by_name, device_of

log = logging.getLogger("spark_harness.telemetry")

DEFAULT_CADENCE_MS = 200.0
#: kernel counters tick in ms (disk) and 10 ms (CPU): shorter periods give no rates
MIN_CADENCE_MS = 20.0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = subparsers.add_parser(
        "sidecar",
        help="sample system, block-device, GPU and server metrics into a spool",
        description="The telemetry service of one measured point, started by Snakemake with "
        "the server and the load generator: it waits for the server's endpoint file, picks "
        "the devices to watch, spools samples (the idle baseline first), writes its service "
        "file and samples until SIGTERM or SIGINT. SIGUSR1 asks for an immediate sample and "
        "a flush marker.",
    )
    p.add_argument(
        "--endpoint-file",
        required=True,
        type=Path,
        help="the server's endpoint file (contract.Endpoint); waited for",
    )
    p.add_argument(
        "--service-file",
        required=True,
        type=Path,
        help="where to write contract.SidecarInfo once spooling starts",
    )
    p.add_argument(
        "--spool", required=True, type=Path, help="JSON-lines spool (an older one is moved aside)"
    )
    p.add_argument(
        "--cadence-ms",
        type=float,
        default=DEFAULT_CADENCE_MS,
        help="sampling period (default %(default)s ms)",
    )
    p.add_argument(
        "--devices",
        default="auto",
        help="'auto' (the device holding the G3 directory, else the spool's) "
        "or a comma list of block devices (nvme0n1,/dev/vda)",
    )
    p.add_argument(
        "--wait-timeout-s",
        type=float,
        default=120.0,
        help="how long to wait for the endpoint file (default %(default)s s)",
    )
    p.set_defaults(func=main)


class UsageError(ValueError):
    """Bad arguments: reported in one line, exit status 2."""


def resolve_devices(
    spec: str, endpoint: contract.Endpoint, spool: Path
) -> tuple[list[BlockDevice], dict[str, Any], list[tuple[str, str]]]:
    """Devices to watch, what each holds, and the ``unavailable`` notes of ``auto``."""
    roles: dict[str, list[str]] = {}
    devices: list[BlockDevice] = []

    def add(dev: BlockDevice, role: str | None) -> None:
        if dev not in devices:
            devices.append(dev)
        if role:
            roles.setdefault(dev.name, []).append(role)

    g3, g3_error = None, ""
    if endpoint.g3_dir:
        try:
            g3 = device_of(endpoint.g3_dir)
        except (DeviceNotFound, OSError) as e:
            g3_error = str(e)
    unavailable: list[tuple[str, str]] = []
    if spec.strip() == "auto":
        if endpoint.g3_dir:
            if g3 is None:
                unavailable.append(("disk", f"G3 directory {endpoint.g3_dir}: {g3_error}"))
            else:
                add(g3, "g3")
        else:
            try:
                add(device_of(spool.parent), "spool")
            except (DeviceNotFound, OSError) as e:
                unavailable.append(("disk", f"spool directory {spool.parent}: {e}"))
    else:
        for name in (n.strip() for n in spec.split(",")):
            if not name:
                continue
            try:
                add(device_by_name(name), None)
            except DeviceNotFound as e:
                raise UsageError(f"--devices: {e}") from e
        if not devices:
            raise UsageError("--devices: give 'auto' or at least one device name")
        if g3 is not None and g3 in devices:
            add(g3, "g3")
    info = {
        "devices": [d.token for d in devices],
        "device_info": {
            d.token: {"name": d.name, "disk": d.disk, "dev": f"{d.major}:{d.minor}",
                      "holds": roles.get(d.name, [])}
            for d in devices
        },
        "g3_device": g3.token if g3 is not None and g3 in devices else None,
    }  # fmt: skip
    return devices, info, unavailable


def build_samplers(
    endpoint: contract.Endpoint, devices: list[BlockDevice], cadence_ms: float
) -> tuple[list[Any], list[tuple[str, str]]]:
    """Every sampler this host supports, and why the others are unavailable."""
    from spark_harness.telemetry.disk import DiskSampler
    from spark_harness.telemetry.gpu import GpuSampler
    from spark_harness.telemetry.procio import CgroupIOSampler, ProcessIOSampler
    from spark_harness.telemetry.sampler import Unavailable
    from spark_harness.telemetry.scrape import FORMATS, MetricsSampler
    from spark_harness.telemetry.system import SystemSampler

    for m in endpoint.metrics:
        if m.format not in FORMATS:
            raise UsageError(
                f"endpoint metrics {m.url}: format {m.format!r} is not one of {FORMATS}"
            )
    pids = endpoint.pids or [endpoint.pid]
    factories: list[tuple[str, Any]] = [
        ("system", SystemSampler),
        ("disk", lambda: DiskSampler(devices) if devices else None),
        ("gpu", GpuSampler),
        ("server_io", lambda: ProcessIOSampler(pids)),
        ("cgroup_io", lambda: CgroupIOSampler(pids)),
    ]
    # a slow answer is kept (see sidecar.Sidecar.sample_once), so the HTTP timeout only
    # bounds a hung connection
    timeout_s = max(2.0, 10 * cadence_ms / 1000.0)
    for m in endpoint.metrics:
        factories.append(
            (f"metrics:{m.source}",
             lambda m=m: MetricsSampler(m, timeout_s=timeout_s, grace_s=endpoint.startup_timeout_s))
        )  # fmt: skip
    samplers: list[Any] = []
    unavailable: list[tuple[str, str]] = []
    for name, make in factories:
        try:
            s = make()
        except Unavailable as e:
            unavailable.append((name, str(e)))
            continue
        except Exception as e:  # a sampler that cannot start must not stop the others
            log.warning("sampler %s could not start: %s: %s", name, type(e).__name__, e)
            unavailable.append((name, f"could not start: {type(e).__name__}: {e}"))
            continue
        if s is not None:
            samplers.append(s)
    return samplers, unavailable


def run(args: argparse.Namespace) -> int:
    """The sidecar's life: wait, set up, spool until told to stop."""
    from spark_harness.telemetry.sidecar import Spool

    if args.cadence_ms < MIN_CADENCE_MS:
        raise UsageError(
            f"--cadence-ms must be at least {MIN_CADENCE_MS:.0f}, got {args.cadence_ms}"
        )
    parent = os.getppid()
    clock = Clock.start()
    spool = Spool(args.spool)
    # Publish at once: the point's load generator starts when this file exists (Snakemake
    # checks for it in one-second steps) and then waits for the first sample itself. A
    # set-up that fails or is stopped takes the file back, so no dead sidecar looks alive.
    signal.signal(signal.SIGTERM, _stop_setup)
    signal.signal(signal.SIGINT, _stop_setup)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # a flush before sampling: nothing to flush
    contract.SidecarInfo(
        pid=os.getpid(),
        spool=str(args.spool.absolute()),
        cadence_ms=args.cadence_ms,
        started_ns=clock.now_ns(),
        clock=clock.to_dict(),
    ).write(args.service_file)
    try:
        sidecar, devices = _set_up(args, clock, spool, parent)
    except BaseException as e:
        args.service_file.unlink(missing_ok=True)
        spool.close()
        if isinstance(e, _SetupStopped):
            return 0
        raise

    def started() -> None:
        log.info("spooling to %s every %.0f ms; watching %s", args.spool, args.cadence_ms,
                 ", ".join(d.name for d in devices) or "no block device")  # fmt: skip

    try:
        asyncio.run(sidecar.run(on_started=started))  # its own SIGTERM/SIGINT handlers
    except _SetupStopped:  # stopped in the instant before the loop took the signals over
        pass
    finally:
        spool.close()
    return 0


class _SetupStopped(Exception):
    """SIGTERM or SIGINT before sampling began."""


def _stop_setup(signum: int, frame: Any) -> None:
    raise _SetupStopped


def _set_up(
    args: argparse.Namespace, clock: Clock, spool: Any, parent: int
) -> tuple[Any, list[Any]]:
    """Wait for the server's endpoint, resolve devices, build the samplers."""
    from spark_harness.telemetry.sidecar import Sidecar

    contract.wait_for_file(args.endpoint_file, args.wait_timeout_s)
    endpoint = contract.Endpoint.read(args.endpoint_file)
    devices, device_info, unavailable = resolve_devices(args.devices, endpoint, args.spool)
    samplers, more = build_samplers(endpoint, devices, args.cadence_ms)
    header = {
        "sidecar_pid": os.getpid(),
        "clock": clock.to_dict(),
        "endpoint": str(args.endpoint_file),
        "samplers": [s.name for s in samplers],
        **device_info,
    }
    sidecar = Sidecar(
        samplers, spool, clock, args.cadence_ms, header, unavailable + more, parent_pid=parent
    )
    return sidecar, devices


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s sidecar %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        return run(args)
    except UsageError as e:
        log.error("%s", e)
        return 2
    except TimeoutError as e:
        log.error("endpoint file: %s", e)
        return 1
