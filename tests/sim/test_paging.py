"""UMA paging (mode paging): residency bookkeeping, real page I/O, and its cost in a step."""

from __future__ import annotations

import asyncio
import statistics
from pathlib import Path

import pytest

from spark_harness.sim.config import SimConfigError, endpoint_facts, sim_config
from spark_harness.sim.paging import PAGE_BYTES, Pager

from .simclient import run, running_sim, words


def pager(tmp_path: Path, blocks: int = 16, resident: int = 4, pages: int = 2) -> Pager:
    return Pager(tmp_path / "swap", blocks, resident, pages * PAGE_BYTES)


def test_blocks_within_memory_never_page(tmp_path: Path) -> None:
    p = pager(tmp_path)
    for _ in range(5):
        plan = p.plan([0, 1, 2, 3])
        p.run(plan)
    assert (p.stats.pages_in, p.stats.pages_out, p.stats.faults) == (0, 0, 0)
    p.close()


def test_overflow_pages_out_lru_and_faults_back_page_by_page(tmp_path: Path) -> None:
    p = pager(tmp_path, resident=4, pages=2)
    p.run(p.plan([0, 1, 2, 3]))
    plan = p.plan([4])  # memory full: block 0 (least recent) goes out, 4 is a zero-fill
    assert (plan.out, plan.into) == ([0], [])
    p.run(plan)
    plan = p.plan([0])  # 0 comes back from swap, 1 goes out
    assert (plan.out, plan.into) == ([1], [0])
    p.run(plan)
    assert p.stats.pages_out == 2 * 2 and p.stats.pages_in == 2 and p.stats.faults == 1
    p.close()
    assert not (tmp_path / "swap").exists()


def test_cyclic_working_set_beyond_memory_faults_every_block(tmp_path: Path) -> None:
    # LRU over a loop bigger than memory: every touch misses (the paging knee's cause)
    p = pager(tmp_path, blocks=16, resident=4, pages=1)
    p.run(p.plan(range(6)))
    before = p.stats.faults
    p.run(p.plan(range(6)))
    assert p.stats.faults - before == 6


def test_freed_blocks_are_dropped_not_paged(tmp_path: Path) -> None:
    p = pager(tmp_path, resident=2, pages=1)
    p.run(p.plan([0, 1]))
    p.discard([0, 1])
    plan = p.plan([2, 3])
    assert (plan.out, plan.into) == ([], [])
    p.close()


def test_a_page_read_checks_what_was_written(tmp_path: Path) -> None:
    p = pager(tmp_path, resident=1, pages=1)
    p.file.write_page(5)
    p.file.read_page(5)
    with pytest.raises(OSError, match="does not hold"):
        p.file.read_page(6)  # never written: a hole, not page 6
    p.close()


def test_config_checks_paging_keys() -> None:
    ok = sim_config({"sim": {"mode": "paging", "g1_blocks": 64, "resident_blocks": 16}})
    assert ok.paging and not ok.tiered and ok.prefix_reuse is False
    with pytest.raises(SimConfigError, match="resident_blocks"):
        sim_config({"sim": {"mode": "paging", "g1_blocks": 64}})
    with pytest.raises(SimConfigError, match="resident_blocks"):
        sim_config({"sim": {"mode": "paging", "g1_blocks": 64, "resident_blocks": 65}})
    with pytest.raises(SimConfigError, match="needs mode paging"):
        sim_config({"sim": {"mode": "uma", "g1_blocks": 64, "resident_blocks": 8}})


def test_endpoint_names_the_swap_directory(tmp_path: Path) -> None:
    spec = {"sim": {"mode": "paging", "g1_blocks": 64, "resident_blocks": 16}}
    assert endpoint_facts(spec, tmp_path)["g3_dir"] == str(tmp_path / "swap")


def test_paging_slows_decode_and_is_counted(tmp_path: Path) -> None:
    """Planted effect: the same work with KV beyond memory reads pages back every step
    and takes longer per token than with KV in memory; the metrics count the pages."""
    base = {"mode": "paging", "g1_blocks": 256, "max_num_seqs": 4, "byte_scale": 0.125}

    async def tpot(resident: int, sub: str) -> tuple[float, dict[str, float]]:
        async with running_sim(base | {"resident_blocks": resident}, tmp_path / sub) as sim:
            results = await asyncio.gather(
                *(sim.generate(words(256, tag=f"u{i}"), max_tokens=12) for i in range(4))
            )
            gaps = [
                b - a
                for r in results
                for a, b in zip(r.event_offsets_s, r.event_offsets_s[1:], strict=False)
            ]
            return statistics.median(gaps), await sim.metrics()

    async def scenario() -> None:
        fits, m_fits = await tpot(256, "fits")  # 4 x 17 blocks in memory
        pages, m_pages = await tpot(32, "pages")  # 68 blocks over 32 resident
        assert m_fits["sim_paging_faults_total"] == 0
        assert m_pages["sim_paging_faults_total"] > 0
        assert m_pages["sim_paging_pages_in_total"] == 8 * m_pages["sim_paging_faults_total"]
        assert pages > fits

    run(scenario())
