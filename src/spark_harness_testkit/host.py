"""What this test host offers that some tests depend on."""

from __future__ import annotations

from pathlib import Path

THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def thp_mode() -> str:
    """The kernel's transparent huge page mode: ``always``, ``madvise`` or ``never``
    (also where the kernel has no such setting)."""
    try:
        text = THP_ENABLED.read_text()
    except OSError:
        return "never"
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else "never"
