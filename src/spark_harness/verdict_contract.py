"""The verdict contract: what ``verdict.json`` holds, in one place.

``analysis`` writes verdicts, ``plots`` titles and captions figures from them, the
verdict table (:mod:`spark_harness.verdicts_table`) and the report read them. All take
the schema version, the statuses, the generic reason codes and the table names from
here, and :func:`validate` fails loudly on a verdict of another shape or version
(docs/ANALYSIS.md describes every field).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
INCONCLUSIVE = "inconclusive"
INVALID = "invalid"
#: In the order of precedence (docs/ANALYSIS.md): best first.
STATUSES = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, INVALID)

# Reason codes every hypothesis can give (its evaluator adds its own, same shape):
# ``code`` or ``code:subject`` (the criterion, stack or point it is about).
MISSING_EVIDENCE = "missing_evidence"
NO_CI = "no_ci"
CI_SPANS_THRESHOLD = "ci_spans_threshold"
NO_USABLE_RUNS = "no_usable_runs"
REASON_PATTERN = r"^[a-z0-9_]+(:[^\s]+)?$"

VERDICT_JSON = "verdict.json"
SUMMARY_CSV = "summary.csv"


def figure_table(figure: str) -> str:
    """The analysis table a figure draws from: ``fig_{figure}.csv``."""
    return f"fig_{figure}.csv"


_NUMBER = {"type": ["number", "null"]}
_CRITERION = {
    "type": "object",
    "required": ["name", "statistic", "status", "reasons"],
    "properties": {
        "name": {"type": "string"},
        "statistic": {"type": "string"},
        "status": {"enum": list(STATUSES)},
        "value": _NUMBER,
        "ci": {"type": ["array", "null"], "items": _NUMBER},
        "threshold": _NUMBER,
        "op": {"type": "string"},
        "unit": {"type": "string"},
        "role": {"enum": ["rule", "any", "info"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}
_GATE = {
    "type": "object",
    "required": ["name", "passed", "effect"],
    "properties": {
        "name": {"type": "string"},
        "passed": {"type": ["boolean", "null"]},
        "effect": {"enum": [INVALID, INCONCLUSIVE, "report"]},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}
#: JSON Schema of ``verdict.json`` (the fields readers rely on; more are allowed).
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["schema_version", "hypothesis", "title", "status", "reasons", "criteria"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "hypothesis": {"type": "string", "minLength": 1},
        "title": {"type": "string"},
        "status": {"enum": list(STATUSES)},
        "statistic": {"type": ["object", "null"]},
        "threshold": {"type": ["object", "null"]},
        "ci": {"type": ["array", "null"], "items": _NUMBER},
        "reasons": {"type": "array", "items": {"type": "string", "pattern": REASON_PATTERN}},
        "criteria": {"type": "array", "items": _CRITERION},
        "gates": {"type": "object", "additionalProperties": _GATE},
        "stacks": {"type": "object"},
        "tables": {"type": "array", "items": {"type": "string"}},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}


class ContractError(ValueError):
    """A verdict that does not match the contract; the message names the file and field."""


def validate(data: Any, where: str = "verdict") -> Mapping[str, Any]:
    """``data`` if it is a verdict of this schema version, else :class:`ContractError`."""
    import jsonschema  # here: the point processes import this module and start fast

    if isinstance(data, Mapping) and data.get("schema_version") != SCHEMA_VERSION:
        raise ContractError(
            f"{where}: schema_version {data.get('schema_version')!r}, this harness reads"
            f" {SCHEMA_VERSION} (rerun the summary rule to rewrite it)"
        )
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(SCHEMA).iter_errors(data)
    )
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ContractError(f"{where}: not a verdict.json: {at}: {error.message}")
    return data


def read(path: Path) -> Mapping[str, Any]:
    """A verdict file, validated."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as e:
        raise ContractError(f"{path}: verdict missing (the summary rule writes it)") from e
    except json.JSONDecodeError as e:
        raise ContractError(f"{path}: not valid JSON: {e}") from e
    return validate(data, str(path))
