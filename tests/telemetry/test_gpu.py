"""GPU sampling through NVML.

The first tests run everywhere: NVML absent (the usual CI case) and one unsupported
query (GB10's missing GPU-memory figure), the latter against a stand-in NVML that fails
the way the real one does. The last group runs only where NVML initialises (a GPU
machine) and checks real readings.
"""

from __future__ import annotations

import types
from collections import namedtuple

import pynvml
import pytest

from spark_harness.telemetry.gpu import GpuSampler
from spark_harness.telemetry.sampler import Unavailable

Util = namedtuple("Util", "gpu memory")
Mem = namedtuple("Mem", "total free used")


def _nvml(**overrides: object) -> types.ModuleType:
    """pynvml's errors and constants with device calls for one GPU; overrides replace them."""
    mod = types.ModuleType("fake_nvml")
    for name in dir(pynvml):
        if name.startswith(("NVML_", "NVMLError")):
            setattr(mod, name, getattr(pynvml, name))
    calls = {
        "nvmlInit": lambda: None,
        "nvmlShutdown": lambda: None,
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda i: f"gpu{i}",
        "nvmlDeviceGetUtilizationRates": lambda h: Util(37, 5),
        "nvmlDeviceGetMemoryInfo": lambda h: Mem(80 << 30, 60 << 30, 20 << 30),
        "nvmlDeviceGetPowerUsage": lambda h: 123_456,  # mW
        "nvmlDeviceGetClockInfo": lambda h, kind: 1_980 if kind == pynvml.NVML_CLOCK_SM else 0,
        "nvmlDeviceGetTemperature": lambda h, kind: 51,
    }
    calls.update(overrides)
    for name, fn in calls.items():
        setattr(mod, name, fn)
    return mod


def _raise(code: int):  # type: ignore[no-untyped-def]
    def fail(*_: object) -> None:
        raise pynvml.NVMLError(code)

    return fail


def test_nvml_library_missing_makes_the_source_unavailable() -> None:
    nvml = _nvml(nvmlInit=_raise(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    with pytest.raises(Unavailable, match="NVML did not initialise"):
        GpuSampler(nvml)


def test_no_gpu_makes_the_source_unavailable() -> None:
    with pytest.raises(Unavailable, match="no GPU"):
        GpuSampler(_nvml(nvmlDeviceGetCount=lambda: 0))


def test_this_host_without_nvml_is_unavailable_not_faked() -> None:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        with pytest.raises(Unavailable):
            GpuSampler()
    else:
        pynvml.nvmlShutdown()
        pytest.skip("NVML works here; the real-GPU tests below cover it")


def test_readings_are_converted_to_canonical_units() -> None:
    assert GpuSampler(_nvml()).sample() == {
        "gpu0_util_pct": 37,
        "gpu0_mem_used_bytes": 20 << 30,
        "gpu0_power_w": pytest.approx(123.456),
        "gpu0_sm_clock_mhz": 1_980,
        "gpu0_temp_c": 51,
    }


def test_unsupported_memory_query_is_recorded_once_and_the_rest_go_on() -> None:
    calls = {"mem": 0}

    def no_memory(_: object) -> None:
        calls["mem"] += 1
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    s = GpuSampler(_nvml(nvmlDeviceGetMemoryInfo=no_memory))
    first = s.sample()
    assert "gpu0_mem_used_bytes" not in first and first["gpu0_util_pct"] == 37
    assert s.take_absent() == [("gpu.gpu0_mem_used_bytes", "NVML: Not Supported")]
    second = s.sample()
    assert second == first
    assert s.take_absent() == [] and calls["mem"] == 1  # not asked again


def test_a_transient_read_error_skips_that_field_only() -> None:
    s = GpuSampler(_nvml(nvmlDeviceGetPowerUsage=_raise(pynvml.NVML_ERROR_GPU_IS_LOST)))
    out = s.sample()
    assert "gpu0_power_w" not in out and out["gpu0_temp_c"] == 51
    assert s.take_absent() == []  # a failed read is not "unavailable"


def test_all_reads_failing_is_a_sampler_failure() -> None:
    fail = _raise(pynvml.NVML_ERROR_UNKNOWN)
    nvml = _nvml(
        nvmlDeviceGetUtilizationRates=fail,
        nvmlDeviceGetMemoryInfo=fail,
        nvmlDeviceGetPowerUsage=fail,
        nvmlDeviceGetClockInfo=fail,
        nvmlDeviceGetTemperature=fail,
    )
    with pytest.raises(RuntimeError, match="gpu0_util_pct"):
        GpuSampler(nvml).sample()


# ------------------------------------------------------------ real NVML only
def _nvml_works() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


needs_gpu = pytest.mark.skipif(not _nvml_works(), reason="NVML does not initialise here")


@needs_gpu
def test_real_gpu_readings_are_plausible() -> None:
    s = GpuSampler()
    try:
        out = s.sample()
        absent = dict(s.take_absent())
    finally:
        s.close()
    plausible = {
        "util_pct": (0, 100),
        "power_w": (1, 2000),
        "sm_clock_mhz": (1, 5000),
        "temp_c": (1, 120),
        "mem_used_bytes": (1, 1 << 50),  # absent on GB10: unified memory
    }
    for suffix, (lo, hi) in plausible.items():
        field = f"gpu0_{suffix}"
        if field in out:
            assert lo <= out[field] <= hi, (field, out[field])
        else:  # not faked: recorded once as unavailable, with NVML's reason
            assert f"gpu.{field}" in absent, (field, absent)
    assert "gpu0_util_pct" in out or "gpu0_temp_c" in out  # NVML gave something real


@needs_gpu
def test_real_gpu_utilisation_rises_under_work() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    s = GpuSampler()
    try:
        x = torch.randn(4096, 4096, device="cuda")
        for _ in range(200):
            x = x @ x
            x = x / x.norm()
        out = s.sample()  # while the queued work still runs
        torch.cuda.synchronize()
    finally:
        s.close()
    assert out["gpu0_util_pct"] > 0
