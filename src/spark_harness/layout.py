"""Where every file of a run lives, relative to the results directory.

The patterns use the Snakemake wildcard names (``hyp``, ``stack``, ``point``, ``rep``),
so the rules use them as output patterns and Python code formats them with values:
one definition of the layout for both.
"""

from __future__ import annotations

from pathlib import Path

#: The workflow's wildcard rules (``wildcard_constraints`` in workflow/rules/common.smk):
#: a name from an import or a config must match before it becomes part of a path.
WILDCARDS = {
    "hyp": "H[0-9][AB]?",
    "stack": "[A-Za-z][A-Za-z0-9]*",
    "point": "[A-Za-z0-9._-]+",
    "rep": "[0-9]+",
}

RAW_DIR = "raw/{hyp}/{stack}/{point}/r{rep}"
REQUESTS = RAW_DIR + "/requests.jsonl"
TELEMETRY = RAW_DIR + "/telemetry.jsonl"
RUN = RAW_DIR + "/run.json"
#: Partial data of a failed attempt is moved here so a rerun starts clean and nothing
#: measured is lost (Snakemake deletes the declared outputs of a failed job).
FAILED_DIR = "failed/{hyp}/{stack}/{point}/r{rep}"

SERVICE_DIR = "services/{hyp}/{stack}/{point}/r{rep}"
ENDPOINT = SERVICE_DIR + "/endpoint.json"
SIDECAR = SERVICE_DIR + "/sidecar.json"
SCRATCH_DIR = "scratch/{hyp}/{stack}/{point}/r{rep}"
LOG_DIR = "logs/{hyp}/{stack}/{point}/r{rep}"

INGEST_DIR = "ingest/{hyp}/{stack}"
INGEST_REQUESTS = INGEST_DIR + "/requests.parquet"
INGEST_TELEMETRY = INGEST_DIR + "/telemetry.parquet"
INGEST_POINTS = INGEST_DIR + "/points.parquet"

SUMMARY_DIR = "summary/{hyp}"
SUMMARY_CSV = SUMMARY_DIR + "/summary.csv"
VERDICT = SUMMARY_DIR + "/verdict.json"
U_WORK = "summary/H0/u_work/{stack}.json"

FIGURE_DIR = "figures/{hyp}"


def path(results: str | Path, pattern: str, **fields: object) -> Path:
    """Format one layout pattern under ``results``."""
    return Path(results) / pattern.format(**fields)
