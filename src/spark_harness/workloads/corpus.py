"""Deterministic words for prompts: the corpus, seeded word streams and nonces.

Every prompt is built from one word list (``inputs/prompts/words.txt``), so the same
(seed, key) always yields the same text in every process. Two prompts share a prefix
exactly when they were built from the same key: that is how workloads plant prefix reuse
(shared bodies, shared-prefix groups, trace ``hash_ids``) and how they prevent it (a
nonce at the start).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from functools import cache
from pathlib import Path

DEFAULT_CORPUS = "inputs/prompts/words.txt"

#: The repository root of a source checkout (``src/spark_harness/workloads/`` -> root), where
#: ``inputs/`` lives when the harness runs from another directory.
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


class InputError(ValueError):
    """An input file named by the workload is missing or malformed."""


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


@cache
def load_words(path: str = DEFAULT_CORPUS) -> tuple[str, ...]:
    """The corpus: one word per line; every entry must be a single whitespace-free word."""
    words = tuple(read_lines(path))
    bad = [w for w in words if len(w.split()) != 1]
    if bad:
        raise InputError(f"corpus {path}: entries must be single words, got {bad[:3]}")
    if len(words) < 2:
        raise InputError(f"corpus {path}: needs at least 2 words, has {len(words)}")
    return words


def word_stream(words: tuple[str, ...], seed: int, key: str) -> Iterator[str]:
    """An endless seeded walk over the corpus; equal (seed, key) give equal streams."""
    rng = random.Random(f"{seed}:{key}")
    choice = rng.choice
    while True:
        yield choice(words)


def nonce(seed: int, key: str) -> str:
    """A tag unique to (seed, key): one whitespace-free word, so one simulator token."""
    return "id" + hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=6).hexdigest()
