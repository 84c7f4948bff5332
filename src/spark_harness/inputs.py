"""Input files under ``inputs/``: where to find them and the formats shared by the
load generator and the simulator (the LoRA adapter list is read by both: the workload
draws requests from it, the simulator creates the adapters it names).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The repository root of a source checkout (``src/spark_harness/`` -> root), where
#: ``inputs/`` lives when the harness runs from another directory.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class InputError(ValueError):
    """An input file is missing or malformed; the message names the file and line."""


def resolve_input(path: str | Path) -> Path:
    """Find an input file: as given (relative to the working directory), else under the
    project root. Raise InputError naming both places."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.is_absolute() and (_PROJECT_ROOT / p).is_file():
        return _PROJECT_ROOT / p
    tried = [str(p.resolve())] + ([] if p.is_absolute() else [str(_PROJECT_ROOT / p)])
    raise InputError(f"input file {str(path)!r} not found (tried {', '.join(tried)})")


def read_lines(path: str | Path) -> list[str]:
    """Non-empty lines of an input file, without ``#`` comments."""
    out = []
    for line in resolve_input(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


@dataclass(frozen=True)
class Adapter:
    """One line of a LoRA adapter list (``name [weight]``): weight = share of requests."""

    name: str
    weight: float = 1.0


def read_adapters(path: str | Path) -> list[Adapter]:
    """Parse an adapter list; raise InputError naming the line of any bad entry."""
    out: list[Adapter] = []
    for i, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if len(parts) > 2:
            raise InputError(f"{path}: entry {i} {line!r}: expected `name [weight]`")
        try:
            weight = float(parts[1]) if len(parts) == 2 else 1.0
        except ValueError:
            raise InputError(f"{path}: entry {i} {line!r}: weight is not a number") from None
        if not weight > 0:
            raise InputError(f"{path}: entry {i} {line!r}: weight must be > 0")
        out.append(Adapter(parts[0], weight))
    names = [a.name for a in out]
    if not out:
        raise InputError(f"{path}: lists no adapters")
    if len(set(names)) != len(names):
        raise InputError(f"{path}: adapter names repeat: {names}")
    return out
