"""Host CPU, memory, swap and paging: the OS-side evidence of H3 and H8.

CPU shares come from two reads of the kernel's cumulative CPU times (psutil), as ``% of
all CPUs`` like ``iostat``'s avg-cpu line; "user" includes niced user time. Memory
figures are ``/proc/meminfo`` fields as the kernel defines them (``MemAvailable``; the
page cache ``Cached``; swap in use ``SwapTotal - SwapFree``), read in one pass because
this runs five times a second. Major faults and swap-ins are rates of ``/proc/vmstat``
counters, which psutil does not expose.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import psutil

from spark_harness.telemetry.sampler import Fields, Rate, Sampler

#: /proc/vmstat counter -> canonical rate field
VMSTAT_RATES = {
    "pgmajfault": "pgmajfault_per_s",
    "pswpin": "pswpin_per_s",
    "pswpout": "pswpout_per_s",
}
_VMSTAT = re.compile(r"^(" + "|".join(VMSTAT_RATES) + r") (\d+)$", re.MULTILINE)
_MEMINFO = re.compile(r"^(MemAvailable|Cached|SwapTotal|SwapFree):\s+(\d+) kB$", re.MULTILINE)

# guest time is already counted in user/nice by the kernel, so it is not part of the total
_CPU_PARTS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
#: least CPU time (s, summed over CPUs) a share is computed over: the kernel counts in
#: 10 ms ticks, so fewer than 5 ticks would give shares in steps of 20 %
MIN_CPU_S = 0.05


def cpu_shares(prev: object, cur: object) -> Fields | None:
    """User/system/iowait as % of all CPUs between two ``psutil.cpu_times()`` reads, or
    ``None`` if too little CPU time passed to tell."""
    d = {k: getattr(cur, k, 0.0) - getattr(prev, k, 0.0) for k in _CPU_PARTS}
    total = sum(d.values())
    if total < MIN_CPU_S:
        return None
    return {
        "cpu_user_pct": 100.0 * (d["user"] + d["nice"]) / total,
        "cpu_system_pct": 100.0 * (d["system"] + d["irq"] + d["softirq"]) / total,
        "cpu_iowait_pct": 100.0 * d["iowait"] / total,
    }


def parse_vmstat(text: str) -> dict[str, int]:
    """The counters of :data:`VMSTAT_RATES` from a ``/proc/vmstat`` text."""
    return {name: int(value) for name, value in _VMSTAT.findall(text)}


def parse_meminfo(text: str) -> Fields:
    """Available memory, page cache and swap in use (bytes) from a ``/proc/meminfo`` text."""
    kb = {name: int(value) for name, value in _MEMINFO.findall(text)}
    return {
        "mem_available_bytes": kb["MemAvailable"] * 1024,
        "mem_cached_bytes": kb["Cached"] * 1024,
        "swap_used_bytes": (kb["SwapTotal"] - kb["SwapFree"]) * 1024,
    }


class SystemSampler(Sampler):
    """CPU shares, available/cached memory, swap use and paging rates of the host."""

    name = "system"

    def __init__(self, proc: Path = Path("/proc")) -> None:
        super().__init__()
        self._vmstat = proc / "vmstat"
        self._meminfo = proc / "meminfo"
        self._cpu_prev = psutil.cpu_times()
        self._rates = Rate()
        self._read_vmstat_rates()  # baseline, so the first sample already has rates

    def _read_vmstat_rates(self) -> dict[str, float] | None:
        return self._rates.update(parse_vmstat(self._vmstat.read_text()), time.monotonic())

    def sample(self) -> Fields:
        out = parse_meminfo(self._meminfo.read_text())
        cpu = psutil.cpu_times()
        shares = cpu_shares(self._cpu_prev, cpu)
        if shares is not None:
            self._cpu_prev = cpu
            out.update(shares)
        rates = self._read_vmstat_rates()
        if rates:
            out.update({VMSTAT_RATES[k]: v for k, v in rates.items()})
        return out
