"""JSON schemas (YAML) for the plan and for stack files; ``workflow/schemas`` links here."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def schema_path(name: str) -> Path:
    """Path of ``<name>.schema.yaml`` shipped with the package."""
    return Path(str(resources.files(__package__).joinpath(f"{name}.schema.yaml")))
