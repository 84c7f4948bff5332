"""The v2.5 evaluators on synthetic runs with planted effects (and without them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spark_harness.analysis import AnalysisError, summarize
from spark_harness.analysis.verdict import NOT_SUPPORTED, SUPPORTED
from spark_harness.ingest import ingest
from spark_harness_testkit.synthetic import Levels, RunSpec, write_run

MEMORY = [512, 256, 96, 64]  # 4 users x 33 blocks = 132: pressure 0.26, 0.52, 1.38, 2.06
QOS = ["none", "moderate", "heavy"]
LISTS = "inputs/lora/v2.5/adapters-{}.txt"


def _write(results: Path, hyp: str, stack: str, points: list[tuple[str, dict, dict]]) -> Path:
    """Write 3 repetitions of each (point, axes, RunSpec overrides); ingest; return the dir."""
    for point, axes, kw in points:
        spec = {
            "load": {"kind": "closed", "users": 4},
            "workload": {"kind": "fixed_context", "context_tokens": 512, "output_tokens": 8},
            "server": {"sim": {"block_tokens": 16}},
        }
        for key, value in axes.items():
            parts = key.split(".")
            d = spec
            for p in parts[:-1]:
                d = d.setdefault(p, {})
            d[parts[-1]] = value
        for rep in range(3):
            write_run(
                results,
                RunSpec(hyp, stack, point, rep, axes=axes, spec=spec, n_requests=300, **kw),
            )
    out = results / "ingest" / hyp / stack
    ingest(sorted((results / "raw" / hyp / stack).glob("*/r*")), out)
    return out


def _verdict(results: Path, hyp: str, cfg: dict, sources: dict) -> dict[str, Any]:
    out = results / "summary" / hyp
    summarize(hyp, cfg, sources, out, track="v2.5")
    return json.loads((out / "verdict.json").read_text())


def _criterion(v: dict, name: str) -> dict:
    return next(c for c in v["criteria"] if c["name"] == name)


def _paging_points(knee: bool) -> list[tuple[str, dict, dict]]:
    """Past memory (pressure > 1) the server pages; with ``knee`` p99, iowait and read
    await grow with the pressure (x3 at 96 resident blocks, x4.3 at 64)."""
    pts = []
    for m in MEMORY:
        paged = m < 132
        slow = (132 / m) if knee and paged else 0.0
        pts.append(
            (
                f"mem-{m}",
                {"server.sim.resident_blocks": m},
                {
                    "ttft_p50_ms": 50.0 + 50 * slow,
                    "ttft_p99_ms": 70.0 + 100 * slow if slow else 70.0,
                    "window": Levels(
                        read_iops=3000.0 if paged else 2.0,
                        iowait_pct=0.5 + 4 * slow,
                        read_await_ms=0.1 + 0.2 * slow,
                    ),
                    "counters": {"sim_paging_faults": 5000.0 if paged else 0.0},
                },
            )
        )
    return pts


H2_CFG = {
    "title": "H2",
    "sweep": [{"key": "server.sim.resident_blocks", "role": "memory", "values": MEMORY}],
}


def test_h2_finds_the_planted_paging_knee(tmp_path: Path) -> None:
    src = _write(tmp_path, "H2", "P", _paging_points(knee=True))
    v = _verdict(tmp_path, "H2", H2_CFG, {("H2", "P"): src})
    assert v["status"] == SUPPORTED
    knee = _criterion(v, "p99_ratio_at_knee")
    assert knee["details"]["knee_point"] == "mem-96"  # pressure 1.38, the first over 1
    assert knee["value"] == pytest.approx((70 + 100 * 132 / 96) / 70, rel=0.15)
    assert _criterion(v, "device_reads_rise_at_knee")["value"] == pytest.approx(3000, rel=0.1)
    assert (tmp_path / "summary" / "H2" / "fig_paging_knee.csv").is_file()


def test_h2_invents_no_knee_when_p99_stays_flat(tmp_path: Path) -> None:
    src = _write(tmp_path, "H2", "P", _paging_points(knee=False))
    v = _verdict(tmp_path, "H2", H2_CFG, {("H2", "P"): src})
    knee = _criterion(v, "p99_ratio_at_knee")
    assert knee["details"]["knee_point"] is None
    assert knee["status"] == NOT_SUPPORTED
    assert v["status"] == NOT_SUPPORTED


def test_h3_and_h8_read_the_h2_runs(tmp_path: Path) -> None:
    src = _write(tmp_path, "H2", "P", _paging_points(knee=True))
    sources = {("H2", "P"): src}
    h3 = _verdict(tmp_path, "H3", {"title": "H3", "analytical": {"from": ["H2"]}}, sources)
    # planted: the server paged, the kernel's counters stayed at 0 -> no OS correlation
    assert _criterion(h3, "r_os_paging_p99")["status"] != SUPPORTED
    assert _criterion(h3, "r_server_faults_p99")["value"] > 0.8
    h8 = _verdict(tmp_path, "H8", {"title": "H8", "analytical": {"from": ["H2"]}}, sources)
    # planted: iowait and read await rise with p99 on the paging runs
    assert _criterion(h8, "r_iowait_p99")["status"] == SUPPORTED
    assert _criterion(h8, "r_read_await_p99")["status"] == SUPPORTED


@pytest.mark.parametrize(("heavy_p99", "status"), [(140.0, SUPPORTED), (70.0, NOT_SUPPORTED)])
def test_h4_qos_effect_planted_and_absent(tmp_path: Path, heavy_p99: float, status: str) -> None:
    pts = [
        (
            f"qos-{q}",
            {"qos.profile": q},
            {
                "ttft_p99_ms": heavy_p99 if q == "heavy" else 70.0,
                "counters": {"sim_paging_faults": 4000.0},
            },
        )
        for q in QOS
    ]
    src = _write(tmp_path, "H4", "P", pts)
    cfg = {"title": "H4", "sweep": [{"key": "qos.profile", "role": "qos_profile", "values": QOS}]}
    v = _verdict(tmp_path, "H4", cfg, {("H4", "P"): src})
    assert _criterion(v, "p99_ratio_worst_qos")["status"] == status


def test_h5_slope_and_h6_storm_and_h7_device_reads(tmp_path: Path) -> None:
    sizes = [4, 16, 64]
    h5 = [
        (
            f"adapters-{n}",
            {"workload.adapters": LISTS.format(n)},
            {
                "ttft_p99_ms": 70.0 + 2 * n,
                "window": Levels(read_iops=10.0 * n, read_kbps=2000.0 * n),
                "counters": {"sim_lora_loads": 2.0 * n, "sim_lora_read_bytes": 2e6 * n},
            },
        )
        for n in sizes
    ]
    src5 = _write(tmp_path, "H5", "A", h5)
    cfg5 = {
        "title": "H5",
        "sweep": [
            {
                "key": "workload.adapters",
                "role": "adapters",
                "values": [LISTS.format(n) for n in sizes],
            }
        ],
    }
    v5 = _verdict(tmp_path, "H5", cfg5, {("H5", "A"): src5})
    assert v5["status"] == SUPPORTED, v5["reasons"]
    slope = _criterion(v5, "slope_p99_vs_adapters")["value"]
    assert slope == pytest.approx(2.0, rel=0.25)  # 2 ms per adapter planted
    h6 = [
        (
            f"mix-{n}",
            {"workload.adapters": LISTS.format(n)},
            {
                "ttft_p99_ms": 200.0 if n == 64 else 70.0,
                "counters": {"sim_lora_loads": 60.0 if n == 64 else 1.0},
            },
        )
        for n in (1, 64)
    ]
    src6 = _write(tmp_path, "H6", "A", h6)
    cfg6 = {
        "title": "H6",
        "sweep": [
            {
                "key": "workload.adapters",
                "role": "adapters",
                "values": [LISTS.format(n) for n in (1, 64)],
            }
        ],
    }
    v6 = _verdict(tmp_path, "H6", cfg6, {("H6", "A"): src6})
    assert v6["status"] == SUPPORTED, v6["reasons"]
    assert _criterion(v6, "p99_ratio_storm")["value"] == pytest.approx(200 / 70, rel=0.1)
    v7 = _verdict(
        tmp_path,
        "H7",
        {"title": "H7", "analytical": {"from": ["H5"]}},
        {("H5", "A"): src5},
    )
    # device read bytes were planted proportional to the adapter bytes (read_iops x n)
    assert _criterion(v7, "r_device_vs_lora_bytes")["status"] == SUPPORTED


def test_unknown_track_and_v3_id_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="unknown plan track"):
        summarize("H2", {}, {("H2", "P"): tmp_path}, tmp_path, track="v9")
    with pytest.raises(AnalysisError, match=r"no evaluator for hypothesis 'H2A' in the v2\.5 plan"):
        summarize("H2A", {}, {("H2A", "A"): tmp_path}, tmp_path, track="v2.5")
