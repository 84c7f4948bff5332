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

from spark_harness.inputs import InputError, read_lines, resolve_input

__all__ = ["DEFAULT_CORPUS", "InputError", "load_words", "read_lines", "resolve_input"]

DEFAULT_CORPUS = "inputs/prompts/words.txt"


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
