"""`spark-harness import`: legacy run directories -> the data contract, nothing invented."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from spark_harness import cli, contract
from spark_harness.analysis import summarize
from spark_harness.backfill import BackfillError, convert, imported_runs
from spark_harness.ingest import ingest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "legacy_runs"


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_requests_keep_what_was_recorded_and_null_the_rest(tmp_path: Path) -> None:
    done = convert(FIXTURES / "h0-c8", tmp_path, "H0")
    assert done.dest == tmp_path / "imported" / "H0" / "A" / "legacy-c8" / "r0"
    reqs = lines(done.dest / "requests.jsonl")
    assert all(set(r) == set(contract.REQUEST_FIELDS) for r in reqs)
    load = [r for r in reqs if r["phase"] == "load"]
    assert len(load) == 60 and [r["phase"] for r in reqs].count("warmup") == 1
    first = load[0]
    assert first["ttft_ms"] == 200.0 and first["e2e_ms"] == 500.0
    assert first["sent_ns"] == 1_750_000_000_000_000_000
    assert first["first_token_ns"] - first["sent_ns"] == 200_000_000
    for never in ("tpot_ms", "queue_ms", "ready_ns", "cached_tokens", "event_offsets_ms"):
        assert all(r[never] is None for r in reqs), never
        assert never in done.absent
    errors = {r["request_id"]: r for r in load if not r["ok"]}
    assert set(errors) == {"r10", "r11", "r30"}
    assert (errors["r10"]["status"], errors["r10"]["error_kind"]) == (503, "http")
    assert (errors["r30"]["status"], errors["r30"]["error_kind"]) == (None, "other")
    assert errors["r30"]["ttft_ms"] is None and errors["r30"]["first_token_ns"] is None


def test_telemetry_units_and_absent_sources(tmp_path: Path) -> None:
    done = convert(FIXTURES / "h1-cold", tmp_path, "H1")
    tel = lines(done.dest / "telemetry.jsonl")
    samples = [t for t in tel if t["kind"] == "sample"]
    raw = lines(FIXTURES / "h1-cold" / "sysmon.jsonl")
    assert len(samples) == len(raw)  # no dynkv.jsonl: system samples only
    assert samples[0]["mem_available_bytes"] == raw[0]["mem_avail_kb"] * 1024
    assert samples[0]["disk_nvme0n1_rkb_s"] == raw[0]["disk"]["nvme0n1"]["rkB_s"]
    assert samples[0]["disk_nvme0n1_r_await_ms"] == raw[0]["disk"]["nvme0n1"]["r_await"]
    assert all("pswpin_per_s" not in s for s in samples)  # not recorded: absent, not 0
    missing = {t["source"] for t in tel if t["kind"] == "unavailable"}
    assert missing == {"kv", "gpu"}
    run = json.loads((done.dest / "run.json").read_text())
    assert set(contract.RUN_KEYS) <= set(run)
    assert "dynkv.jsonl" in run["imported"]["absent"]
    assert run["spec"]["axes"] == {
        "workload.context_tokens": 128,
        "workload.output_tokens": 16,
        "workload.adapter_cache": "cold",
        "load.users": 2,
    }
    assert run["telemetry"]["cadence_ms"] == pytest.approx(500.0)
    assert [r["adapter"] for r in lines(done.dest / "requests.jsonl")][1:3] == [
        "sql-lora",
        "chat-lora",
    ]


def test_imported_runs_reach_ingest_and_the_summary(tmp_path: Path) -> None:
    for name in ("h0-c2", "h0-c8"):
        convert(FIXTURES / name, tmp_path, "H0")
    runs = [p.parent for p in imported_runs(tmp_path, "H0", "A")]
    assert [r.name for r in runs] == ["r0", "r0"]
    ingest(runs, tmp_path / "ingest" / "H0" / "A")
    out = tmp_path / "summary" / "H0"
    cfg = {
        "title": "H0",
        "stacks": ["A"],
        "sweep": [{"key": "load.users", "role": "concurrency", "values": [2, 8]}],
    }
    summarize("H0", cfg, {("H0", "A"): tmp_path / "ingest" / "H0" / "A"}, out)
    summary = pl.read_csv(out / "summary.csv")
    assert set(summary["point"]) == {"legacy-c2", "legacy-c8"}
    c2 = summary.filter(pl.col("point") == "legacy-c2")
    assert c2["ttft_p50_ms"][0] == pytest.approx(84.5, abs=0.6)  # planted 80..89 ms
    c8 = summary.filter(pl.col("point") == "legacy-c8")
    assert c8["n_window_errors"][0] == 3


def test_bad_input_names_file_and_line(tmp_path: Path) -> None:
    src = tmp_path / "run"
    shutil.copytree(FIXTURES / "h0-c2", src)
    with open(src / "metrics.jsonl", "a") as fh:
        fh.write('{"ts": 1750000010.0, "lat_ttft_ms": 5.0}\n')
    with pytest.raises(BackfillError, match=r"metrics.jsonl:42: `rc` must be an integer"):
        convert(src, tmp_path / "res", "H0")
    (src / "metrics.jsonl").write_text('{"ts": 1.0, "rc": 200, "phase": "bogus"}\n')
    with pytest.raises(BackfillError, match=r"metrics.jsonl:1: `phase` 'bogus' is not one of"):
        convert(src, tmp_path / "res", "H0")
    (src / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(BackfillError, match=r"metrics.jsonl:1: not JSON"):
        convert(src, tmp_path / "res", "H0")
    (src / "config.yaml").unlink()
    with pytest.raises(BackfillError, match=r"no config\.yaml"):
        convert(src, tmp_path / "res", "H0")


def test_cli_imports_and_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    args = ["import", str(FIXTURES / "h0-c2"), "--results", str(tmp_path), "--hyp", "H0"]
    assert cli.main([*args, "--stack", "B", "--axis", "load.users=2"]) == 0
    run = json.loads(next((tmp_path / "imported" / "H0" / "B").glob("*/r0/run.json")).read_text())
    assert run["spec"]["axes"]["load.users"] == 2
    assert "absent:" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="exists"):
        cli.main([*args, "--stack", "B"])
    assert cli.main([*args, "--stack", "B", "--force"]) == 0
    with pytest.raises(SystemExit, match="not a hypothesis id"):
        cli.main(["import", str(FIXTURES / "h0-c2"), "--hyp", "X1"])
