"""Chained block hashes: how the simulator recognises a shared prefix.

A prompt's tokens (``spark_harness.tokens``) are cut into blocks of ``block_tokens``;
block *i*'s hash covers its own tokens and block *i-1*'s hash, so equal hashes mean an
equal prefix from the first token (as in vLLM and KVBM). Only full blocks are hashed.
The chain starts from a salt naming the model or LoRA adapter, since an adapter's KV
differs from the base model's for the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b

DIGEST_BYTES = 16


def block_hashes(tokens: Sequence[str], block_tokens: int, salt: str) -> list[bytes]:
    """Hashes of the full blocks of ``tokens``, each chained to the one before."""
    parent = blake2b(salt.encode(), digest_size=DIGEST_BYTES).digest()
    out: list[bytes] = []
    for start in range(0, len(tokens) - block_tokens + 1, block_tokens):
        h = blake2b(parent, digest_size=DIGEST_BYTES)
        h.update(" ".join(tokens[start : start + block_tokens]).encode())
        parent = h.digest()
        out.append(parent)
    return out
