"""Storage QoS perturbation for H4: background random I/O on the G3 device's filesystem.

A profile is random O_DIRECT reads and writes on private files in the target directory
(so on the same filesystem and device as the G3 tier), running for the whole load
window. ``none`` runs nothing; ``moderate`` is one job at a low queue depth;
``heavy`` saturates the device with several jobs at a deep queue.

The tool is fio, whose JSON report is kept with the point, or, where fio is not
installed and ``tool: auto``, the builtin generator (:mod:`spark_harness.telemetry.iogen`)
with the same profiles, recorded as such. Both run as child processes that die with the
caller, so the load generator's own timing is not disturbed and nothing outlives a
failed job.

A latency target (``qos.latency_target_ms``) makes a profile hold the device's read
latency instead of a queue depth: the builtin generator runs as few of the profile's
outstanding I/Os as keep its mean read latency at the target. That is the same slowdown
on any disk, which a fixed profile is not (heavy slows a fast NVMe by a fraction and a
slow cloud disk by a factor of fifty). fio's own latency-target mode probes queue depths
over windows of seconds, too slow for a point's warm-up, so a target runs the builtin
generator (``tool: auto``) and asking fio for one is an error.

The latency the builtin generator holds is that of its own requests, whose transfer is
part of it (heavy's are 1 MiB: fewer requests for the same pressure, so the generator
needs little CPU). A neighbour's 256 KiB reads wait for the queue only: beside heavy held
at 4-6 ms on the demo VM the simulator's G3 I/O took 0.3-1.6 ms on average and up to
3-6 ms at p95, and in some trials was not slowed at all (0.2-0.3 and 0.3-0.5 ms quiet).
The sidecar's read await shows the device's side.
Earlier the generator's buffers were scattered pages, and on a virtual disk without
indirect descriptors about 7 of its 128 KiB requests filled the ring while the rest
waited for a request tag, a wait the device's await did not show; its buffers now lie
in huge pages (:mod:`spark_harness.iobuf`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import mmap
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from spark_harness.telemetry.procguard import guarded

log = logging.getLogger(__name__)

TOOLS = ("fio", "builtin", "auto")
FIO_PACKAGE = "fio"
START_TIMEOUT_S = 120.0  # laying out the files of a heavy profile on a slow disk
STOP_TIMEOUT_S = 15.0
RUNTIME_S = 24 * 3600  # run until stopped
LAYOUT_CHUNK = 1 << 20


@dataclass(frozen=True)
class Profile:
    """One background I/O pattern."""

    read_pct: int  # share of operations that are reads
    block_kib: int
    iodepth: int  # outstanding I/Os per job
    jobs: int
    file_mib: int  # file per job

    @property
    def threads(self) -> int:
        """Synchronous threads the builtin generator uses for the same outstanding I/O:
        one per I/O fio keeps in flight (fewer would leave a fast device half idle)."""
        return self.jobs * self.iodepth


PROFILES: dict[str, Profile | None] = {
    "none": None,
    "moderate": Profile(read_pct=70, block_kib=16, iodepth=4, jobs=1, file_mib=64),
    "heavy": Profile(read_pct=50, block_kib=1024, iodepth=32, jobs=4, file_mib=128),
}


class ToolMissing(RuntimeError):
    """The requested I/O tool is not installed."""


def builtin_files(workdir: Path, profile: Profile) -> list[Path]:
    """The builtin generator's files: one per job, as fio lays out one per job."""
    return [workdir / f"iogen.{j}" for j in range(profile.jobs)]


def lay_out(path: Path, mib: int) -> None:
    """A file of ``mib`` MiB of random data written with O_DIRECT and synced, so its
    blocks are really on the device (reads of unwritten extents never reach it)."""
    buf = mmap.mmap(-1, LAYOUT_CHUNK)  # page-aligned, as O_DIRECT needs
    buf.write(os.urandom(LAYOUT_CHUNK))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
    try:
        for i in range(mib * (1 << 20) // LAYOUT_CHUNK):
            os.pwrite(fd, buf, i * LAYOUT_CHUNK)
        os.fsync(fd)
    finally:
        os.close(fd)


def fio_command(profile: Profile, name: str, workdir: Path, json_out: Path) -> list[str]:
    """The fio command line for ``profile`` (threads, so one process holds all jobs).

    fio runs at the lowest CPU priority (``--nice=19``): the profile perturbs the
    device, and on a machine with few cores an unniced fio would also take CPU from the
    server and the load generator, so a QoS effect would mix storage with CPU contention.
    """
    return [
        "fio", f"--name={name}", f"--directory={workdir}", "--rw=randrw",
        f"--rwmixread={profile.read_pct}", f"--bs={profile.block_kib}k",
        f"--iodepth={profile.iodepth}", f"--numjobs={profile.jobs}",
        f"--size={profile.file_mib}m", "--direct=1", "--ioengine=libaio", "--thread", "--nice=19",
        "--group_reporting", "--time_based", f"--runtime={RUNTIME_S}",
        "--output-format=json", f"--output={json_out}",
    ]  # fmt: skip


def _side(job: dict[str, Any]) -> dict[str, float]:
    clat = job.get("clat_ns") or job.get("lat_ns") or {}
    pct = clat.get("percentile") or {}
    return {
        "iops": float(job.get("iops", 0.0)),
        "mib_s": float(job.get("bw_bytes", job.get("bw", 0) * 1024)) / 2**20,
        "lat_mean_us": float(clat.get("mean", 0.0)) / 1e3,
        "lat_p99_us": float(pct.get("99.000000", 0.0)) / 1e3,
    }


def fio_summary(path: Path) -> dict[str, float]:
    """Headline numbers of a fio JSON report (fio may print a notice before the JSON)."""
    text = path.read_text()
    report = json.loads(text[text.index("{") :])
    job = report["jobs"][0]
    # with group_reporting a side's runtime is the group's wall time (job_runtime sums jobs)
    runtime_s = max(float(job.get(side, {}).get("runtime", 0)) for side in ("read", "write")) / 1e3
    out: dict[str, float] = {"runtime_s": runtime_s}
    for side in ("read", "write"):
        out.update({f"{side}_{k}": v for k, v in _side(job.get(side, {})).items()})
    return out


class Perturbation:
    """Background I/O of one QoS profile, started before and stopped after a load window.

    ``with Perturbation(...) as p:`` stops it whatever happens; ``stop()`` returns what
    ran: profile, tool, command, timing, the JSON report's path and its headline numbers.
    """

    def __init__(
        self,
        profile: str,
        tool: str,
        target_dir: Path,
        out_dir: Path,
        latency_target_ms: float | None = None,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"qos profile {profile!r} is not one of {', '.join(PROFILES)}")
        if tool not in TOOLS:
            raise ValueError(f"qos tool {tool!r} is not one of {', '.join(TOOLS)}")
        if latency_target_ms is not None and not latency_target_ms > 0:
            raise ValueError(f"qos.latency_target_ms must be > 0, got {latency_target_ms!r}")
        if latency_target_ms is not None and tool == "fio":
            raise ValueError(
                "qos.latency_target_ms runs the builtin generator (fio's latency-target "
                "mode probes over windows of seconds): set qos.tool to auto or builtin"
            )
        self.latency_target_ms = latency_target_ms
        have_fio = shutil.which("fio") is not None
        if tool == "fio" and not have_fio and PROFILES[profile] is not None:
            raise ToolMissing(
                "qos tool fio is not installed: install the Debian/Ubuntu package "
                f"`{FIO_PACKAGE}` (apt-get install {FIO_PACKAGE}), or set qos.tool to "
                "builtin or auto"
            )
        self.profile_name = profile
        self.profile = PROFILES[profile]
        auto = "fio" if have_fio and latency_target_ms is None else "builtin"
        self.tool = auto if tool == "auto" else tool
        self.requested_tool = tool
        self.target_dir = Path(target_dir)
        self.out_dir = Path(out_dir)
        self.json_path = self.out_dir / f"qos-{self.tool}-{profile}.json"
        self.log_path = self.out_dir / f"qos-{self.tool}-{profile}.log"
        self._log: Any = None
        self._fio_name = f"qos-{profile}"
        self._prepare_s: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._workdir: Path | None = None
        self._argv: list[str] = []
        self._started_ns = 0
        self._result: dict[str, Any] | None = None

    # --------------------------------------------------------------- start
    def prepare(self) -> dict[str, Any]:
        """Lay out the I/O files (a second or more for ``heavy``): call it before the load
        window, e.g. during the idle baseline; :meth:`start` does it if still needed."""
        if self._workdir is not None or self.profile is None:
            return {"prepare_s": self._prepare_s}
        t0 = time.monotonic()
        self.target_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._workdir = Path(tempfile.mkdtemp(prefix=".qos-", dir=self.target_dir))
        try:
            if self.tool == "fio":
                layout = subprocess.run(
                    [*fio_command(self.profile, self._fio_name, self._workdir,
                                  self._workdir / "layout.json"), "--create_only=1"],
                    capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False,
                )  # fmt: skip
                if layout.returncode != 0:
                    raise RuntimeError(f"fio could not lay out its files: {layout.stderr[-2000:]}")
            else:
                for path in builtin_files(self._workdir, self.profile):
                    lay_out(path, self.profile.file_mib)
        except BaseException:
            self._cleanup()
            raise
        self._prepare_s = time.monotonic() - t0
        return {"prepare_s": self._prepare_s}

    def start(self) -> dict[str, Any]:
        """Start the I/O (preparing first if needed) and return once it runs: what started."""
        if self._proc is not None or self._result is not None:
            raise RuntimeError("a Perturbation runs once")
        self.prepare()
        self._started_ns = time.time_ns()
        started: dict[str, Any] = {
            "profile": self.profile_name,
            "tool": self.tool if self.profile else None,
            "started_ns": self._started_ns,
        }
        if self.profile is None:
            return started
        self._log = open(self.log_path, "w")  # noqa: SIM115 - the tool's stderr, closed in stop()
        try:
            if self.tool == "fio":
                self._start_fio()
            else:
                self._start_builtin()
        except BaseException:
            self._kill()
            self._cleanup()
            raise
        log.info("qos %s (%s) running in %s", self.profile_name, self.tool, self._workdir)
        return {**started, "argv": self._argv, "prepare_s": self._prepare_s}

    def _start_fio(self) -> None:
        assert self._workdir is not None and self.profile is not None
        self._argv = fio_command(self.profile, self._fio_name, self._workdir, self.json_path)
        self._proc = subprocess.Popen(
            guarded(self._argv), stdout=subprocess.DEVNULL, stderr=self._log, text=True,
            start_new_session=True,
        )  # fmt: skip
        time.sleep(0.3)  # fio fails fast on a bad option or a filesystem without O_DIRECT
        if self._proc.poll() is not None:
            raise RuntimeError(f"fio exited at once ({self._proc.returncode}): {self._log_tail()}")

    def _start_builtin(self) -> None:
        assert self._workdir is not None and self.profile is not None
        self._argv = [
            sys.executable, "-m", "spark_harness.telemetry.iogen", "--dir", str(self._workdir),
            "--out", str(self.json_path), "--profile", json.dumps(asdict(self.profile)),
            "--parent", str(os.getpid()),
        ]  # fmt: skip
        if self.latency_target_ms is not None:
            self._argv += ["--latency-target-ms", str(self.latency_target_ms)]
        self._proc = subprocess.Popen(
            self._argv, stdout=subprocess.PIPE, stderr=self._log, text=True,
            start_new_session=True,
        )  # fmt: skip
        assert self._proc.stdout is not None
        # "ready" once its threads run
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT_S)
        line = self._proc.stdout.readline() if ready else ""
        if line.strip() != "ready":
            self._kill()
            raise RuntimeError(
                f"builtin I/O generator did not start within {START_TIMEOUT_S:.0f} s: "
                f"{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text().strip()[-2000:]

    # ---------------------------------------------------------------- stop
    def stop(self) -> dict[str, Any]:
        """Stop the I/O (fio writes its report on SIGINT), remove the files, say what ran."""
        if self._result is not None:
            return self._result
        result: dict[str, Any] = {
            "profile": self.profile_name,
            "tool": self.tool if self.profile else None,
            "requested_tool": self.requested_tool,
            "settings": asdict(self.profile) if self.profile else None,
            "latency_target_ms": self.latency_target_ms,
            "target_dir": str(self.target_dir),
            "started_ns": self._started_ns,
        }
        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)
            try:
                rc = self._proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._kill()
                rc = None
            result["argv"] = self._argv
            result["returncode"] = rc
            try:
                if self.tool == "fio":
                    result["summary"] = fio_summary(self.json_path)
                else:
                    report = json.loads(self.json_path.read_text())
                    result["summary"] = report["summary"]
                    result["depth"] = report["depth"]
                    result["buffers_contiguous"] = report["buffers_contiguous"]
                result["json"] = str(self.json_path)
            except (OSError, ValueError, KeyError, IndexError) as e:
                result["summary"] = None
                result["error"] = f"no report from {self.tool}: {type(e).__name__}: {e}"
        result["stopped_ns"] = time.time_ns()
        self._cleanup()
        self._result = result
        return result

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def _cleanup(self) -> None:
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()
        if self._log is not None:
            self._log.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Perturbation:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
