"""Sim settings: mode-dependent defaults, derived sizes, and clear errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from spark_harness.plan import resolve_stack
from spark_harness.schemas import schema_path
from spark_harness.sim import endpoint_facts
from spark_harness.sim.config import IO_ALIGN, SimConfig, SimConfigError, scaled_bytes

ROOT = Path(__file__).resolve().parents[2]


def test_mode_defaults_follow_the_stacks() -> None:
    uma = SimConfig.from_sim({"mode": "uma"})
    assert (uma.prefix_reuse, uma.kv_allocation) == (False, "reserve")
    tiered = SimConfig.from_sim({"mode": "tiered"})
    assert (tiered.prefix_reuse, tiered.kv_allocation) == (True, "reserve")
    assert SimConfig.from_sim({"mode": "tiered", "prefix_reuse": False}).prefix_reuse is False


def test_g1_is_derived_from_memory_when_not_given() -> None:
    cfg = SimConfig.from_sim(
        {"model_profile": "llama-3.1-8b", "hardware_profile": "dgx-spark", "block_tokens": 32}
    )
    assert cfg.block_bytes_full_scale == 2 * 2**20  # docs/REFERENCE.md: 32 tokens fp8 = 2 MiB
    expected = int((128e9 * 0.9 - 5e9) // (2 * 2**20))
    assert cfg.g1_blocks == expected
    assert cfg.max_model_len == 131072


def test_byte_scale_shrinks_disk_blocks_but_not_the_model() -> None:
    cfg = SimConfig.from_sim(
        {"model_profile": "llama-3.1-8b", "block_tokens": 32, "byte_scale": 1 / 64}
    )
    assert cfg.block_bytes_full_scale == 2 * 2**20
    assert cfg.block_bytes == 32 * 1024
    assert scaled_bytes(100, 0.5) == IO_ALIGN  # never below one aligned unit
    assert scaled_bytes(3 * IO_ALIGN, 1.0) == 3 * IO_ALIGN


def test_a_read_cap_is_a_least_time_per_read() -> None:
    cfg = SimConfig.from_sim({"max_read_mb_s": 125})
    assert cfg.read_floor_s(cfg.block_bytes) == pytest.approx(cfg.block_bytes / 125e6)
    assert cfg.read_floor_s(cfg.lora_file_bytes) == pytest.approx(cfg.lora_file_bytes / 125e6)
    assert SimConfig.from_sim({}).read_floor_s(cfg.block_bytes) == 0.0


@pytest.mark.parametrize(
    ("sim", "message"),
    [
        ({"mode": "uma", "g2_blocks": 4}, "sim.g2_blocks: mode uma has G1 only"),
        ({"mode": "fancy"}, "sim.mode"),
        ({"eviction": "random"}, "sim.eviction"),
        ({"byte_scale": 2}, "sim.byte_scale"),
        ({"max_read_mb_s": -1}, "sim.max_read_mb_s"),
        ({"max_read_mb_s": True}, "sim.max_read_mb_s"),
        ({"idle_batch_wait_ms": -1}, "sim.idle_batch_wait_ms"),
        ({"idle_batch_wait_ms": 5000}, "sim.idle_batch_wait_ms"),
        ({"max_num_seqs": 0}, "sim.max_num_seqs"),
        ({"g1_blocks": -1}, "sim.g1_blocks"),
        ({"typo_key": 1}, "unknown key"),
        ({"model_profile": "nope"}, "unknown model_profile"),
        ({"max_tokens_limit": 10_000}, "max_tokens_limit"),
        ({"lora_preload": True}, "sim.lora_preload: needs lora_adapters"),
        ({"lora_preload": "yes"}, "sim.lora_preload: must be true or false"),
        (
            {
                "memory_fraction": 0.01,
                "model_profile": "llama-3.3-70b",
                "hardware_profile": "dgx-spark",
            },
            "sim.g1_blocks",
        ),
    ],
)
def test_bad_settings_name_the_key(sim: dict, message: str) -> None:
    with pytest.raises(SimConfigError, match=message):
        SimConfig.from_sim(sim)


def test_endpoint_facts_of_the_shipped_stacks(tmp_path: Path) -> None:
    tiered = resolve_stack(ROOT / "config/stacks/sim-tiered.yaml")
    facts = endpoint_facts(tiered, tmp_path)
    assert facts["g3_dir"] == str(tmp_path / "g3")
    assert facts["block_bytes"] % IO_ALIGN == 0
    assert facts["block_bytes_full_scale"] >= facts["block_bytes"]
    assert facts["max_num_tokens"] > 0
    uma = resolve_stack(ROOT / "config/stacks/sim-uma.yaml")
    assert endpoint_facts(uma, tmp_path)["g3_dir"] is None
    b1 = resolve_stack(ROOT / "config/stacks/sim-tiered.yaml", "B1")
    assert endpoint_facts(b1, tmp_path)["g3_dir"] is None
    custom = {"model": "m", "sim": {"mode": "tiered", "g3_blocks": 4, "g3_dir": "/data/kv"}}
    assert endpoint_facts(custom, tmp_path)["g3_dir"] == "/data/kv"


def test_the_stack_schema_knows_exactly_the_sim_keys() -> None:
    schema = yaml.safe_load(schema_path("stack").read_text())
    documented = set(schema["$defs"]["sim"]["properties"])
    known = {f.name for f in fields(SimConfig)} - {"model", "hardware"}
    assert documented == known | {"model_profile", "hardware_profile"}
    docs = (ROOT / "docs/SIMULATOR.md").read_text()
    assert all(f"| `{key}` |" in docs for key in documented)
