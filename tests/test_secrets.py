"""Secrets: recognised by key, redacted wherever they would be written."""

from __future__ import annotations

import pytest

from spark_harness.secrets import REDACTED, SecretError, read_secret, redact, secret_paths


def test_redact_hides_secrets_and_keeps_token_counts() -> None:
    spec = {
        "server": {"sim": {"api_key": "k", "api_key_env": "NAME", "max_num_tokens": 8192}},
        "legacy": [{"hf_token": "hf_x", "db-password": "p", "tokenizer": "t"}],
        "empty": {"api_key": None},
    }
    out = redact(spec)
    assert out["server"]["sim"] == {
        "api_key": REDACTED,
        "api_key_env": "NAME",
        "max_num_tokens": 8192,
    }
    assert out["legacy"] == [{"hf_token": REDACTED, "db-password": REDACTED, "tokenizer": "t"}]
    assert out["empty"] == {"api_key": None}
    assert secret_paths(spec) == ["server.sim.api_key", "legacy.0.hf_token", "legacy.0.db-password"]
    assert spec["server"]["sim"]["api_key"] == "k"  # a copy: the running spec keeps it


def test_read_secret_by_reference(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SH_KEY", "from-env")
    (tmp_path / "key").write_text("from-file\n")
    assert read_secret("SH_KEY") == "from-env"
    assert read_secret(None, str(tmp_path / "key")) == "from-file"
    assert read_secret() is None
    monkeypatch.delenv("SH_KEY")
    with pytest.raises(SecretError, match="SH_KEY"):
        read_secret("SH_KEY")
