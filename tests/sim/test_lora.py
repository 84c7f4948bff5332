"""LoRA adapters: real files, a cold first load that reads the device, then resident."""

from __future__ import annotations

from pathlib import Path

import pytest

from spark_harness.sim.lora import LoraError, read_adapter_list

from .simclient import device_backed, proc_read_bytes, run, running_sim, words

ADAPTER_BYTES = 8 * 2**20


def adapter_list(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "adapters.txt"
    path.write_text("# adapters\n" + "\n".join(names) + "\n\n")
    return path


def three_adapters_two_resident(tmp_path: Path, **extra: object) -> dict:
    """A simulator with adapters lora-00..02, at most two resident."""
    names = ["lora-00", "lora-01", "lora-02"]
    return {
        "mode": "uma",
        "g1_blocks": 64,
        "lora_adapters": str(adapter_list(tmp_path, names)),
        "lora_adapter_bytes": ADAPTER_BYTES,
        "max_loras": 2,
        **extra,
    }


def test_cold_load_reads_the_adapter_then_it_stays_resident(tmp_path: Path) -> None:
    names = ["lora-00", "lora-01", "lora-02"]
    cfg = three_adapters_two_resident(tmp_path)
    workdir = tmp_path / "work"

    async def scenario() -> None:
        async with running_sim(cfg, workdir) as sim:
            models = await (await sim.http.get("/v1/models")).json()
            listed = {m["id"]: m["parent"] for m in models["data"]}
            assert listed == {"sim": None, "lora-00": "sim", "lora-01": "sim", "lora-02": "sim"}
            files = sorted(p.name for p in (workdir / "lora").iterdir())
            assert files == [f"{n}.safetensors" for n in names]

            before = proc_read_bytes()
            cold = await sim.generate(words(20), max_tokens=2, model="lora-00")
            read = proc_read_bytes() - before
            assert cold.status == 200 and cold.sim["lora_load_ms"] > 0
            if device_backed(workdir):
                assert read >= ADAPTER_BYTES * 0.9  # a real read from the device
            warm = await sim.generate(words(20), max_tokens=2, model="lora-00")
            assert warm.sim["lora_load_ms"] == 0
            m = await sim.metrics()
            assert m["sim_lora_loads_total"] == 1
            assert m["sim_lora_read_bytes_total"] == ADAPTER_BYTES
            assert m["sim_lora_load_seconds_count"] == 1

            # max_loras = 2: loading two more evicts lora-00, which then loads again
            await sim.generate(words(20), max_tokens=1, model="lora-01")
            await sim.generate(words(20), max_tokens=1, model="lora-02")
            assert sim.engine.lora.resident == ["lora-01", "lora-02"]
            again = await sim.generate(words(20), max_tokens=1, model="lora-00")
            assert again.sim["lora_load_ms"] > 0
            assert (await sim.metrics())["sim_lora_loads_total"] == 4

            missing = await sim.generate(words(20), max_tokens=1, model="lora-99")
            assert missing.status == 404

    run(scenario())
    assert not (workdir / "lora").exists()  # the adapter files are removed at shutdown


def test_an_adapter_has_its_own_prefix_cache(tmp_path: Path) -> None:
    cfg = {
        "mode": "tiered",
        "g1_blocks": 64,
        "lora_adapters": str(adapter_list(tmp_path, ["a"])),
        "lora_adapter_bytes": 4096,
    }

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path / "w") as sim:
            await sim.generate(words(40), max_tokens=1)
            with_adapter = await sim.generate(words(40), max_tokens=1, model="a")
            assert with_adapter.cached_tokens == 0
            again = await sim.generate(words(40), max_tokens=1, model="a")
            assert again.cached_tokens == 32

    run(scenario())


def test_a_failed_load_is_an_error_for_its_requests_only(tmp_path: Path) -> None:
    cfg = {
        "mode": "uma",
        "g1_blocks": 64,
        "lora_adapters": str(adapter_list(tmp_path, ["a"])),
        "lora_adapter_bytes": 4096,
    }

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path / "w") as sim:
            (tmp_path / "w" / "lora" / "a.safetensors").unlink()
            res = await sim.generate(words(10), max_tokens=1, model="a", stream=False)
            assert res.status == 503 and "loading LoRA adapter 'a' failed" in res.error["message"]
            assert (await sim.generate(words(10), max_tokens=1)).status == 200

    run(scenario())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "lists no adapters"),
        ("a\na\n", "adapter names repeat"),
        ("../x\n", "not a valid adapter"),
        ("sim\n", "base model"),
    ],
)
def test_bad_adapter_lists_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "list.txt"
    path.write_text(content)
    with pytest.raises(LoraError, match=message):
        read_adapter_list(path, "sim")
    with pytest.raises(LoraError, match="not found"):
        read_adapter_list(tmp_path / "absent.txt", "sim")


def test_preloaded_adapters_are_resident_before_the_first_request(tmp_path: Path) -> None:
    """``lora_preload``: the server keeps its adapters from start-up (the oracle's world
    where cold adapters cannot raise TTFT); a request reads none."""
    cfg = three_adapters_two_resident(tmp_path, lora_preload=True)

    async def scenario() -> None:
        async with running_sim(cfg, tmp_path / "work") as sim:
            assert sim.engine.lora.resident == ["lora-00", "lora-01"]
            first = await sim.generate(words(20), max_tokens=2, model="lora-01")
            assert first.status == 200 and first.sim["lora_load_ms"] == 0
            assert (await sim.metrics())["sim_lora_loads_total"] == 0
            beyond = await sim.generate(words(20), max_tokens=2, model="lora-02")
            assert beyond.sim["lora_load_ms"] > 0  # only max_loras are kept

    run(scenario())
