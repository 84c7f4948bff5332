"""The telemetry and qos sections of the plan's schema accept what the sidecar and the
perturbation accept, and name what they do not."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from spark_harness.plan import Plan, PlanError, load_config, validate
from spark_harness.telemetry.qos import PROFILES, TOOLS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> dict:
    return load_config(ROOT / "config" / "config.yaml")


def _plan(config: dict, **defaults: object) -> Plan:
    cfg = copy.deepcopy(config)
    cfg["defaults"].update(defaults)
    return Plan(cfg, ROOT)


@pytest.mark.parametrize(
    "telemetry",
    [{"cadence_ms": 200, "devices": "auto"}, {"cadence_ms": 50, "devices": ["nvme0n1"]}],
)
def test_valid_telemetry_settings(config: dict, telemetry: dict) -> None:
    run = _plan(config, telemetry=telemetry).runs("H0")[0]
    assert run.spec["telemetry"] == telemetry


@pytest.mark.parametrize(
    ("telemetry", "message"),
    [
        ({"cadence_ms": 10}, "less than the minimum of 20"),
        ({"devices": []}, "devices"),
        ({"devices": "nvme0n1"}, "devices"),
        ({"cadence": 200}, "cadence"),
    ],
)
def test_invalid_telemetry_settings(config: dict, telemetry: dict, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        _plan(config, telemetry=telemetry)


def test_qos_schema_matches_the_perturbation(config: dict) -> None:
    for profile in PROFILES:
        for tool in TOOLS:
            cfg = copy.deepcopy(config)
            cfg["defaults"]["qos"] = {"profile": profile, "tool": tool}
            validate(cfg, "config", "config")
    with pytest.raises(PlanError, match="extreme"):
        _plan(config, qos={"profile": "extreme"})
