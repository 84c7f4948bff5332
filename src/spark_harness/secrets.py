"""Secrets (API keys, tokens, passwords): read by reference, never written down.

A stack names where its key lives (``sim.api_key_env``: an environment variable;
``sim.api_key_file``: a file), so the spec that travels on command lines, into
``run.json`` and into archives holds no secret; the server and every client of it (the
readiness check, the load generator) read the key through :func:`endpoint_api_key`.
Whatever still carries a secret under a secret-looking key is passed through
:func:`redact` before it is written (docs/SECURITY.md).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Words that make a key a secret's (``hf_token``, ``api_key``, ``db_password``, ...):
#: ``max_num_tokens`` counts tokens and is not one; a key naming where a secret lives
#: (``api_key_env``, ``api_key_file``) is not one either.
SECRET_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "apikey", "credential", "credentials", "auth"}
)
_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key")})
REFERENCE_WORDS = frozenset({"env", "file", "path"})
REDACTED = "<redacted>"


class SecretError(ValueError):
    """A secret's reference cannot be read; the message names the reference, not the value."""


def is_secret_key(key: object) -> bool:
    """True for a key whose value is a secret (its words, split at ``_ - .``)."""
    if not isinstance(key, str):
        return False
    words = re.split(r"[_.\-]+", key.lower())
    if words[-1] in REFERENCE_WORDS:
        return False
    return bool(SECRET_WORDS.intersection(words)) or any(
        pair in _PAIRS for pair in itertools.pairwise(words)
    )


def redact(value: Any) -> Any:
    """``value`` with every non-empty value under a secret key replaced by ``REDACTED``."""
    if isinstance(value, Mapping):
        return {
            k: REDACTED if is_secret_key(k) and v not in (None, "") else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def secret_paths(value: Any, prefix: str = "") -> list[str]:
    """Dotted keys of the secrets ``value`` holds (what :func:`redact` would hide)."""
    if isinstance(value, Mapping):
        out = []
        for k, v in value.items():
            key = f"{prefix}{k}"
            if is_secret_key(k) and v not in (None, ""):
                out.append(key)
            else:
                out += secret_paths(v, key + ".")
        return out
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in secret_paths(v, f"{prefix}{i}.")]
    return []


def read_secret(env: str | None = None, file: str | None = None) -> str | None:
    """The secret in environment variable ``env`` or in ``file`` (stripped), or None
    when neither is named."""
    if env:
        if env not in os.environ:
            raise SecretError(f"environment variable {env} (the API key) is not set")
        return os.environ[env]
    if file:
        try:
            return Path(file).read_text().strip()
        except OSError as e:
            raise SecretError(f"cannot read the API key file {file}: {e.strerror}") from e
    return None


def endpoint_api_key(extra: Mapping[str, Any] | None) -> str | None:
    """The API key a client of an endpoint sends, from the references in its ``extra``."""
    extra = extra or {}
    return read_secret(extra.get("api_key_env"), extra.get("api_key_file"))
