"""GPU utilisation, memory, power, clock and temperature through NVML (nvidia-ml-py).

Where NVML cannot start (no driver, no GPU: every CI machine) the whole source is
:class:`Unavailable`. Where one query is unsupported (GB10 has unified memory and
reports no separate GPU memory) that field is recorded absent once and the rest go on.
NVML calls go to the driver and may stall, so this sampler runs in its own thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

from spark_harness.telemetry.sampler import Fields, Sampler, Unavailable

log = logging.getLogger(__name__)


def _queries(nvml: ModuleType) -> dict[str, Callable[[Any], float | int]]:
    """Canonical field suffix -> how to read it from a device handle."""
    return {
        "util_pct": lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
        "mem_used_bytes": lambda h: nvml.nvmlDeviceGetMemoryInfo(h).used,
        "power_w": lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
        "sm_clock_mhz": lambda h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
        "temp_c": lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
    }


class GpuSampler(Sampler):
    """``gpu<i>_*`` fields for every GPU NVML lists."""

    name = "gpu"
    blocking = True

    def __init__(self, nvml: ModuleType | None = None) -> None:
        super().__init__()
        if nvml is None:
            import pynvml  # nvidia-ml-py

            nvml = pynvml
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise Unavailable(f"NVML did not initialise: {e}") from e
        try:
            count = nvml.nvmlDeviceGetCount()
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except nvml.NVMLError as e:
            nvml.nvmlShutdown()
            raise Unavailable(f"NVML lists no usable GPU: {e}") from e
        if not handles:
            nvml.nvmlShutdown()
            raise Unavailable("NVML lists no GPU")
        # codes meaning "this query does not exist here", as opposed to a failed read
        self._absent_codes = {
            nvml.NVML_ERROR_NOT_SUPPORTED,
            nvml.NVML_ERROR_NO_PERMISSION,
            nvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        }
        self._todo = [
            (f"gpu{i}_{suffix}", h, read)
            for i, h in enumerate(handles)
            for suffix, read in _queries(nvml).items()
        ]
        self._failing: set[str] = set()

    def sample(self) -> Fields:
        out: Fields = {}
        errors: list[str] = []
        for item in list(self._todo):
            field, handle, read = item
            try:
                out[field] = read(handle)
            except self._nvml.NVMLError as e:
                if getattr(e, "value", None) in self._absent_codes:
                    self.absent(f"gpu.{field}", f"NVML: {e}")
                    self._todo.remove(item)
                else:
                    errors.append(f"{field}: {e}")
                    if field not in self._failing:
                        self._failing.add(field)
                        log.warning("NVML read of %s failed: %s", field, e)
        if errors and not out:
            raise RuntimeError("; ".join(errors))
        return out

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError as e:
            log.warning("nvmlShutdown: %s", e)
