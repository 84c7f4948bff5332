"""Sweep axes are found by their declared role, on the demo plan and on the Spark's."""

import pytest
import yaml

from spark_harness.analysis import axes
from spark_harness.plan import deep_merge, load_config
from tests.conftest import REPO
from tests.plans import PINNED

SCHEMA = REPO / "src/spark_harness/schemas/config.schema.yaml"


def test_roles_are_the_schemas_enum():
    schema = yaml.safe_load(SCHEMA.read_text())
    sweep = schema["$defs"]["hypothesis"]["properties"]["sweep"]
    assert sweep["items"]["required"] == ["key", "role", "values"]
    assert tuple(sweep["items"]["properties"]["role"]["enum"]) == axes.ROLES


def test_spark_h6_capacity_axis_is_found_by_role():
    cfg = deep_merge(
        load_config(REPO / "config/config.yaml"), load_config(REPO / "config/spark.yaml")
    )
    h6 = cfg["hypotheses"]["H6"]
    assert axes.keys("H6", h6, "tier_capacity") == ["server.params.cpu_cache_gb"]
    assert axes.find("H6", h6, "eviction_policy") is None
    demo = load_config(REPO / "config/config.yaml")["hypotheses"]["H6"]
    assert axes.keys("H6", demo, "tier_capacity") == ["server.sim.g2_blocks"]
    swept = PINNED["H6"]  # the planted-effect tests' H6 sweeps policies too
    assert axes.require("H6", swept, "eviction_policy") == "server.sim.eviction"


def test_missing_role_is_a_clear_error_naming_hypothesis_and_role():
    entry = {"sweep": [{"key": "load.users", "role": "concurrency", "values": [1]}]}
    with pytest.raises(axes.AxisRoleError, match=r"^H2B: .*role 'context'.*load\.users"):
        axes.require("H2B", entry, "context")
    twice = {"sweep": [*entry["sweep"], {"key": "load.rate", "role": "concurrency", "values": [1]}]}
    with pytest.raises(axes.AxisRoleError, match="more than one"):
        axes.find("H0", twice, "concurrency")
    with pytest.raises(ValueError, match="unknown axis role"):
        axes.keys("H0", entry, "colour")
