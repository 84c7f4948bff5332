"""Storage QoS perturbation: profiles and tools, what a run reports, cleanup, and that
"heavy" really slows O_DIRECT reads of a file next to it (H4B depends on it)."""

from __future__ import annotations

import math
import mmap
import os
import random
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from spark_harness.telemetry import qos
from spark_harness.telemetry.devices import DeviceNotFound, device_of
from spark_harness.telemetry.disk import parse_diskstats
from spark_harness.telemetry.qos import PROFILES, Perturbation, ToolMissing, fio_summary
from spark_harness_testkit.host import thp_mode

HAVE_FIO = shutil.which("fio") is not None
needs_fio = pytest.mark.skipif(not HAVE_FIO, reason="fio is not installed (apt-get install fio)")
FIX = Path(__file__).parent / "fixtures"


def _no_fio(monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.which
    monkeypatch.setattr(qos.shutil, "which", lambda name: None if name == "fio" else real(name))


def test_unknown_profile_or_tool_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'extreme'"):
        Perturbation("extreme", "auto", tmp_path, tmp_path)
    with pytest.raises(ValueError, match="'dd'"):
        Perturbation("heavy", "dd", tmp_path, tmp_path)


def test_missing_fio_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_fio(monkeypatch)
    with pytest.raises(ToolMissing, match=r"package `fio` \(apt-get install fio\)"):
        Perturbation("heavy", "fio", tmp_path, tmp_path)


def test_auto_without_fio_uses_the_builtin_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_fio(monkeypatch)
    p = Perturbation("moderate", "auto", tmp_path / "g3", tmp_path / "out")
    assert p.tool == "builtin" and p.requested_tool == "auto"


def test_a_latency_target_runs_the_builtin_generator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qos.shutil, "which", lambda name: f"/usr/bin/{name}")  # fio "installed"
    p = Perturbation("heavy", "auto", tmp_path / "g3", tmp_path / "out", latency_target_ms=4)
    assert p.tool == "builtin"
    with pytest.raises(ValueError, match="latency_target_ms runs the builtin generator"):
        Perturbation("heavy", "fio", tmp_path / "g3", tmp_path / "out", latency_target_ms=4)
    with pytest.raises(ValueError, match="latency_target_ms must be > 0"):
        Perturbation("heavy", "builtin", tmp_path / "g3", tmp_path / "out", latency_target_ms=0)


def test_builtin_heavy_keeps_the_profiles_outstanding_io() -> None:
    """One thread per I/O fio keeps in flight: 16 threads left a fast device half idle
    (its reads 0.7 ms instead of 6 ms here), and H4B's G3 reads did not slow at all."""
    assert PROFILES["heavy"] is not None and PROFILES["heavy"].threads == 4 * 32


def test_profile_none_runs_nothing(tmp_path: Path) -> None:
    with Perturbation("none", "fio", tmp_path / "g3", tmp_path / "out") as p:
        pass
    result = p.stop()
    assert result["profile"] == "none" and result["tool"] is None
    assert "argv" not in result and not (tmp_path / "out").exists()


def test_fio_summary_of_a_report_with_a_notice_before_the_json(tmp_path: Path) -> None:
    report = tmp_path / "fio.json"
    report.write_text("fio: terminating on signal 2\n" + (FIX / "fio_report.json").read_text())
    assert fio_summary(report) == pytest.approx(
        {
            "runtime_s": 4.0,
            "read_iops": 3344.5,
            "read_mib_s": 418.0,
            "read_lat_mean_us": 16737.0,
            "read_lat_p99_us": 50594.0,
            "write_iops": 3468.3,
            "write_mib_s": 433.5,
            "write_lat_mean_us": 18000.0,
            "write_lat_p99_us": 55000.0,
        }
    )


def _run(profile: str, tool: str, tmp_path: Path) -> dict:
    g3, out = tmp_path / "g3", tmp_path / "out"
    g3.mkdir(exist_ok=True)
    (g3 / "block-0001").write_bytes(b"kv")  # the G3 tier's own files stay untouched
    with Perturbation(profile, tool, g3, out) as p:
        time.sleep(1.0)
        running = [c for c in psutil.Process().children(recursive=True) if c.is_running()]
        assert running, "no I/O process is running"
    result = p.stop()
    assert sorted(os.listdir(g3)) == ["block-0001"]  # its private files are removed
    assert all(not c.is_running() for c in running)
    return result


@needs_fio
def test_fio_moderate_runs_and_keeps_its_report(tmp_path: Path) -> None:
    result = _run("moderate", "fio", tmp_path)
    assert result["tool"] == "fio" and result["settings"] == PROFILES["moderate"].__dict__
    assert Path(result["json"]).exists() and result["argv"][0] == "fio"
    s = result["summary"]
    assert s["read_iops"] > 0 and s["write_iops"] > 0 and s["read_lat_mean_us"] > 0
    # the mix follows the profile: ~70 % reads
    assert 0.6 < s["read_iops"] / (s["read_iops"] + s["write_iops"]) < 0.8


def test_builtin_moderate_runs_and_keeps_its_report(tmp_path: Path) -> None:
    result = _run("moderate", "builtin", tmp_path)
    assert result["tool"] == "builtin" and result["returncode"] == 0
    s = result["summary"]
    assert s["read_iops"] > 0 and s["write_iops"] > 0
    # the 70 % read mix, within four binomial SDs of the I/Os of one second (a slow
    # disk completes few: 0.6-0.8 alone failed once after the whole suite's I/O)
    n = s["read_iops"] + s["write_iops"]
    tolerance = max(0.1, 4 * math.sqrt(0.7 * 0.3 / n))
    assert abs(s["read_iops"] / n - 0.7) < tolerance, s


def _probe_file(directory: Path) -> Path:
    """64 MiB laid out as the generator's files are, so its reads reach the device."""
    probe = directory / "probe.bin"
    try:
        qos.lay_out(probe, 64)
    except OSError as e:
        pytest.skip(f"no O_DIRECT here: {e}")
    return probe


def _direct_read_latency_us(path: Path, reads: int = 200) -> float:
    """Mean latency of random 4 KiB O_DIRECT reads."""
    buf = mmap.mmap(-1, 4096)
    size = path.stat().st_size
    rng = random.Random(1)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        t0 = time.perf_counter()
        for _ in range(reads):
            os.preadv(fd, [buf], rng.randrange(size // 4096) * 4096)
        return (time.perf_counter() - t0) / reads * 1e6
    finally:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["fio", "builtin"])
def test_heavy_slows_o_direct_reads_in_the_target_directory(tool: str, tmp_path: Path) -> None:
    if tool == "fio" and not HAVE_FIO:
        pytest.skip("fio is not installed")
    g3 = tmp_path / "g3"
    g3.mkdir()
    probe = _probe_file(g3)
    quiet = _direct_read_latency_us(probe)
    with Perturbation("heavy", tool, g3, tmp_path / "out"):
        time.sleep(0.5)
        loaded = _direct_read_latency_us(probe)
    # once the device has settled (the storm's last writes flushed): at least one of
    # three tries is not still behind them
    time.sleep(0.5)
    os.sync()
    quiet_after = min(_direct_read_latency_us(probe) for _ in range(3))
    baseline = max(quiet, quiet_after)
    assert loaded > 2.0 * baseline, (quiet, loaded, quiet_after)


def _read_await_ms(path: Path) -> Callable[[], tuple[int, int]]:
    """A reader of (reads, ms spent reading) of the block device holding ``path``."""
    try:
        name = device_of(path).name
    except DeviceNotFound as e:
        pytest.skip(f"no block device: {e}")

    def counters() -> tuple[int, int]:
        c = parse_diskstats(Path("/proc/diskstats").read_text(), {name})[name]
        return c.reads, c.read_ms

    return counters


@pytest.mark.slow
def test_a_latency_target_holds_the_device_near_it(tmp_path: Path) -> None:
    """The generator runs as few I/Os as keep its mean read latency at the target (H4B's
    6 ms): held within a factor 1.5, and the device's read await (what H4's figures put
    on their x axis) near it. A neighbour's 256 KiB reads are not checked: the latency
    held is that of 1 MiB requests, whose own transfer is part of it, and beside them
    the simulator's G3 I/O saw anything from no slowdown to p95 4-6 ms between trials
    on the demo VM (benchmarks/README.md)."""
    g3 = tmp_path / "g3"
    g3.mkdir()
    counters = _read_await_ms(g3)
    target_ms = 6.0
    with Perturbation("heavy", "builtin", g3, tmp_path / "held", target_ms) as p:
        time.sleep(0.5)
        reads, read_ms = counters()
        time.sleep(1.0)
        reads2, read_ms2 = counters()
    result = p.stop()
    depth = result["depth"]
    if depth["depth_min"] == depth["depth_most"]:
        pytest.skip(f"the whole profile stays below {target_ms} ms on this device")
    assert depth["latency_target_ms"] == pytest.approx(target_ms)
    held_ms = result["summary"]["read_lat_mean_us"] / 1e3
    assert target_ms / 1.5 < held_ms < target_ms * 1.5, (target_ms, held_ms)
    device_ms = (read_ms2 - read_ms) / max(1, reads2 - reads)
    assert target_ms / 2 < device_ms < target_ms * 1.5, (target_ms, device_ms)


def test_the_builtin_generator_takes_only_idle_cpu_and_contiguous_buffers(tmp_path: Path) -> None:
    """On a 2-core machine a generator at nice 19 still raised Stack A's TTFT p99 by
    3-9 % (A reads nothing from the device): it runs in the idle class. Its buffers lie
    in huge pages, and its report says whether the kernel gave them."""
    g3 = tmp_path / "g3"
    g3.mkdir()
    with Perturbation("moderate", "builtin", g3, tmp_path / "out") as p:
        (gen,) = [c for c in psutil.Process().children() if "iogen" in " ".join(c.cmdline())]
        policy = os.sched_getscheduler(gen.pid)
    result = p.stop()
    assert policy == os.SCHED_IDLE
    share = result["buffers_contiguous"]
    assert share is None or 0.0 <= share <= 1.0
    if os.geteuid() == 0 and thp_mode() != "never":
        assert share == 1.0


@needs_fio
def test_fio_dies_with_a_killed_caller(tmp_path: Path) -> None:
    caller = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from spark_harness.telemetry.qos import Perturbation
        p = Perturbation("moderate", "fio", Path({str(tmp_path / "g3")!r}), Path({str(tmp_path)!r}))
        p.start()
        print("started", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", caller], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout and proc.stdout.readline().strip() == "started"
        fio = [c for c in psutil.Process(proc.pid).children(recursive=True) if c.name() == "fio"]
        assert fio
        proc.kill()  # as Snakemake's SIGKILL of a failed job
        proc.wait()
        _, alive = psutil.wait_procs(fio, timeout=10)
        assert not alive
    finally:
        if proc.stdout:
            proc.stdout.close()


def test_prepare_lays_out_before_the_window_and_start_reuses_it(tmp_path: Path) -> None:
    g3 = tmp_path / "g3"
    p = Perturbation("moderate", "builtin", g3, tmp_path / "out")
    prepared = p.prepare()
    (workdir,) = g3.glob(".qos-*")
    assert (workdir / "iogen.0").stat().st_size == PROFILES["moderate"].file_mib << 20
    started = p.start()
    try:
        assert started["profile"] == "moderate" and started["tool"] == "builtin"
        assert started["prepare_s"] == prepared["prepare_s"] > 0  # not laid out again
        assert started["argv"][1:3] == ["-m", "spark_harness.telemetry.iogen"]
    finally:
        result = p.stop()
    assert result["summary"]["read_iops"] > 0
    assert not workdir.exists()


def test_a_prepared_perturbation_that_never_starts_leaves_nothing(tmp_path: Path) -> None:
    g3 = tmp_path / "g3"
    p = Perturbation("moderate", "builtin", g3, tmp_path / "out")
    p.prepare()
    result = p.stop()
    assert "summary" not in result and list(g3.iterdir()) == []


def test_fio_runs_at_the_lowest_cpu_priority(tmp_path: Path) -> None:
    """The profile perturbs the device, not the CPU the server and client need."""
    argv = qos.fio_command(qos.PROFILES["heavy"], "h", tmp_path, tmp_path / "r.json")
    assert "--nice=19" in argv and "--direct=1" in argv
