"""Ingest: raw JSONL of runs -> typed Parquet, joined by time, failed attempts kept."""

import json
import os

import polars as pl
import pytest

from spark_harness import contract
from spark_harness.ingest import (
    RAW_REQUESTS,
    RAW_TELEMETRY,
    IngestError,
    expand_run_dirs,
    failed_attempts,
    ingest,
    request_schema,
    write_raw_copies,
)
from spark_harness_testkit.synthetic import RunSpec, write_run


def _lines(path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


@pytest.fixture
def runs(tmp_path):
    res = tmp_path / "results"
    dirs = [
        write_run(res, RunSpec("H0", "A", "users-1", r, axes={"load.users": 1}, n_requests=50))
        for r in (0, 1)
    ]
    dirs.append(
        write_run(
            res,
            RunSpec(
                "H0",
                "A",
                "users-2",
                0,
                axes={"load.users": 2},
                outcome="failed",
                reasons=["server_died"],
                n_requests=50,
            ),
        )
    )
    return res, dirs


def test_tables_typed_counted_and_identified(tmp_path, runs):
    _, dirs = runs
    ingest(dirs, tmp_path / "out")
    assert sorted(os.listdir(tmp_path / "out")) == [
        "points.parquet",
        "requests.parquet",
        "telemetry.parquet",
    ]
    req = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    assert req.height == sum(_lines(d / "requests.jsonl") for d in dirs)
    for name, dtype in request_schema().items():
        assert req.schema[name] == dtype, name
    assert req.columns[:5] == ["hyp", "stack", "point", "rep", "run_id"]
    assert set(req["run_id"]) == {"H0/A/users-1/r0", "H0/A/users-1/r1", "H0/A/users-2/r0/attempt-1"}
    assert req.filter(pl.col("in_window"))["phase"].unique().to_list() == ["load"]
    tel = pl.read_parquet(tmp_path / "out" / "telemetry.parquet")
    samples = sum(
        1
        for d in dirs
        for t in map(json.loads, (d / "telemetry.jsonl").read_text().splitlines())
        if t["kind"] == "sample"
    )
    assert tel.height == samples
    assert set(tel["phase"].drop_nulls()) == {"idle", "warmup", "load", "cooldown"}
    points = pl.read_parquet(tmp_path / "out" / "points.parquet")
    assert points.height == 3
    assert points["load.users"].to_list() == [1, 1, 2]
    failed = points.filter(pl.col("outcome") == "failed").row(0, named=True)
    assert failed["excluded"] and failed["exclude_reason"] == "run_failed:server_died"
    assert failed["window_end_ns"] is not None  # the window closes at the last evidence
    ok = points.filter(pl.col("rep") == 0, pl.col("point") == "users-1").row(0, named=True)
    assert (ok["n_window"], ok["aligned_share"], ok["cadence_ms"]) == (50, 1.0, 200.0)
    assert ok["devices"] == ["nvme0n1"] and ok["unavailable"] == ["gpu: synthetic: no NVML"]


def test_the_load_generators_parquet_is_read_instead_of_the_jsonl(tmp_path, runs):
    _, dirs = runs
    lines = sum(_lines(d / "requests.jsonl") for d in dirs)
    ingest(dirs, tmp_path / "from-jsonl")
    for d in dirs[:2]:  # the completed runs; the failed attempt keeps its journal alone
        written = write_raw_copies(d)
        assert written == [d / RAW_REQUESTS, d / RAW_TELEMETRY]
        assert pl.read_parquet(written[0]).schema == pl.Schema(request_schema())
        # ingest must not need the JSON lines any more
        (d / "requests.jsonl").write_text("")
        (d / "telemetry.jsonl").write_text("")
    ingest(dirs, tmp_path / "from-parquet")
    for table in ("requests.parquet", "telemetry.parquet", "points.parquet"):
        a, b = (pl.read_parquet(tmp_path / o / table) for o in ("from-jsonl", "from-parquet"))
        assert a.equals(b), table
    assert pl.read_parquet(tmp_path / "from-jsonl" / "requests.parquet").height == lines


def test_request_joined_to_nearest_sample_within_a_cadence(tmp_path, runs):
    _, dirs = runs
    ingest(dirs[:1], tmp_path / "out")
    req = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    tel = pl.read_parquet(tmp_path / "out" / "telemetry.parquet")["t_ns"].to_numpy()
    for sent, near, gap in req.select("sent_ns", "tel_t_ns", "tel_gap_ms").iter_rows():
        best = tel[abs(tel - sent).argmin()]
        assert near == best and gap == pytest.approx(abs(best - sent) / 1e6)
    assert req["tel_aligned"].all()


def test_telemetry_gap_lowers_the_alignment_share(tmp_path):
    d = write_run(tmp_path, RunSpec("H", "B", "p", 0, telemetry_gap=(0.1, 0.5)))
    ingest([d], tmp_path / "out")
    share = pl.read_parquet(tmp_path / "out" / "points.parquet")["aligned_share"][0]
    assert 0.55 < share < 0.7  # 40 % of the window had no sample within 200 ms


def test_derived_telemetry_columns(tmp_path):
    d = write_run(tmp_path, RunSpec("H", "B", "p", 0, counters={"kv_onboard_blocks_g3": 400}))
    lines = [json.loads(x) for x in (d / "telemetry.jsonl").read_text().splitlines()]
    for t in lines:  # a second device: io_* sums reads, weights await by reads
        if t["kind"] == "sample":
            t.update(disk_sdb_r_s=2.0, disk_sdb_rkb_s=10.0, disk_sdb_r_await_ms=10.0)
    lines[5]["kv_onboard_blocks_g3"] = 0  # a counter reset
    (d / "telemetry.jsonl").write_text("".join(json.dumps(t) + "\n" for t in lines))
    run = json.loads((d / "run.json").read_text())
    run["telemetry"]["devices"] = ["nvme0n1", "sdb"]
    (d / "run.json").write_text(json.dumps(run))
    ingest([d], tmp_path / "out")
    tel = pl.read_parquet(tmp_path / "out" / "telemetry.parquet")
    r = tel.row(3, named=True)
    assert r["io_r_s"] == pytest.approx(r["disk_nvme0n1_r_s"] + 2.0)
    expect = (r["disk_nvme0n1_r_await_ms"] * r["disk_nvme0n1_r_s"] + 20.0) / r["io_r_s"]
    assert r["io_r_await_ms"] == pytest.approx(expect)
    assert tel["kv_onboard_blocks_g3_delta"][5] is None  # negative: a reset, not a count
    assert tel["kv_onboard_blocks_g3_delta"].drop_nulls().sum() >= 399
    assert tel["dt_s"][1] == pytest.approx(0.2, abs=0.01)


def test_torn_last_line_and_unknown_fields_are_kept_or_counted(tmp_path):
    d = write_run(tmp_path, RunSpec("H", "A", "p", 0, n_requests=20))
    lines = (d / "requests.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["future_field"] = 7
    lines[0] = json.dumps(first)
    (d / "requests.jsonl").write_text("\n".join(lines) + '\n{"request_id": "torn", "pha')
    ingest([d], tmp_path / "out")
    req = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    assert req.height == len(lines)
    assert req["future_field"].drop_nulls().to_list() == [7]
    assert pl.read_parquet(tmp_path / "out" / "points.parquet")["bad_lines"][0] == 1


def test_missing_files_mean_nothing_measured(tmp_path):
    d = write_run(
        tmp_path, RunSpec("H", "A", "p", 0, outcome="failed", reasons=["server_not_ready"])
    )
    (d / "requests.jsonl").unlink()
    (d / "telemetry.jsonl").unlink()
    ingest([d], tmp_path / "out")
    p = pl.read_parquet(tmp_path / "out" / "points.parquet").row(0, named=True)
    assert (p["n_requests"], p["n_samples"], p["excluded"]) == (0, 0, True)


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        (None, None),  # the plan left the device as it was
        ({"requested": "none", "applied": True, "before": "mq-deadline"}, "none"),
        ({"requested": "none", "applied": False, "before": "mq-deadline"}, "mq-deadline"),
        ({"requested": "none", "applied": False, "reason": "no block device"}, None),
    ],
)
def test_points_say_which_io_scheduler_the_contended_device_ran(tmp_path, held, expected):
    """A point that asked for a scheduler and did not get it (no root) must not read as
    one that ran under it: the column holds the scheduler in effect."""
    d = write_run(tmp_path, RunSpec("H4B", "B", "qos-heavy", 0, n_requests=5))
    if held is not None:
        run = json.loads((d / "run.json").read_text())
        run["io_scheduler"] = held
        (d / "run.json").write_text(json.dumps(run))
    ingest([d], tmp_path / "out")
    assert pl.read_parquet(tmp_path / "out" / "points.parquet")["io_scheduler"].to_list() == [
        expected
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda run: run.pop("phases"), "lacks phases"),
        (lambda run: run.update(outcome="great"), "outcome 'great'"),
        (lambda run: run.update(rep="x"), "not an integer"),
        (lambda run: run["phases"].pop("load"), "no load"),
        (lambda run: run["phases"].update(load=[1]), r"\[start_ns, end_ns\]"),
    ],
)
def test_bad_run_json_is_a_clear_error(tmp_path, edit, message):
    d = write_run(tmp_path, RunSpec("H", "A", "p", 0, n_requests=5))
    run = json.loads((d / "run.json").read_text())
    edit(run)
    (d / "run.json").write_text(json.dumps(run))
    with pytest.raises(IngestError, match=message):
        ingest([d], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_contract_type_violation_is_a_clear_error(tmp_path):
    d = write_run(tmp_path, RunSpec("H", "A", "p", 0, n_requests=5))
    lines = (d / "requests.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    row["prompt_tokens"] = "many"
    lines[2] = json.dumps(row)
    (d / "requests.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(IngestError, match=r"requests\.jsonl"):
        ingest([d], tmp_path / "out")


def test_not_a_run_dir_and_duplicates_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match=r"no run\.json"):
        ingest([tmp_path / "empty"], tmp_path / "out")
    a = write_run(tmp_path / "a", RunSpec("H", "A", "p", 0, n_requests=5))
    b = write_run(tmp_path / "b", RunSpec("H", "A", "p", 0, n_requests=5))
    with pytest.raises(IngestError, match="both run H/A/p/r0"):
        ingest([a, b], tmp_path / "out")
    with pytest.raises(IngestError, match="no run directories"):
        ingest([], tmp_path / "out")


def test_failed_point_folder_expands_to_its_attempts(tmp_path):
    for attempt in ("attempt-1", "attempt-2"):
        write_run(
            tmp_path, RunSpec("H", "B", "p", 1, outcome="failed", attempt=attempt, n_requests=5)
        )
    found = failed_attempts(tmp_path, "H", "B")
    assert [p.name for p in found] == ["attempt-1", "attempt-2"]
    assert expand_run_dirs([found[0].parent]) == found
    ingest([found[0].parent], tmp_path / "out")
    ids = pl.read_parquet(tmp_path / "out" / "points.parquet")["run_id"].to_list()
    assert ids == ["H/B/p/r1/attempt-1", "H/B/p/r1/attempt-2"]


def test_request_schema_is_the_contract():
    assert list(request_schema()) == list(contract.REQUEST_FIELDS)
    assert request_schema()["event_offsets_ms"] == pl.List(pl.Float64)
