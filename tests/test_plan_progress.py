"""``spark-harness progress``: points done / total and an ETA, from the plan's estimate
until points have run, then from their measured pace; printed as each point starts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from spark_harness import layout
from spark_harness.cli import main
from spark_harness.plan import Plan
from spark_harness.plan_progress import ENV, export, report, status
from tests.conftest import REPO, copy_workflow
from tests.test_plan import BASE
from tests.workflow.smk import SMALL, snakemake, write_config


def finish(results: Path, rep: int, mtime: float) -> None:
    """A point's run.json, finished at ``mtime``."""
    run = layout.path(results, layout.RUN, hyp="H0", stack="A", point="users-1", rep=rep)
    run.parent.mkdir(parents=True, exist_ok=True)
    run.write_text("{}")
    os.utime(run, (mtime, mtime))


def test_before_points_have_run_the_eta_is_the_plans_estimate(tmp_path):
    assert re.match(
        r"progress: 0/10 points done, about 6 min a point \(planned\), ETA 1\.0 h ",
        status(tmp_path, 10, 360.0),
    )
    finish(tmp_path, 0, 1_000.0)  # one point gives no pace yet
    assert "1/10 points done, about 6 min a point (planned), ETA 54 min" in status(
        tmp_path, 10, 360.0
    )


def test_finished_points_give_the_measured_pace_and_a_pause_does_not_count(tmp_path):
    t0 = 1_000_000.0
    # three points 2 min apart, a night's pause, two more 2 min apart
    for rep, t in enumerate([t0, t0 + 120, t0 + 240, t0 + 40_000, t0 + 40_120, t0 + 40_240]):
        finish(tmp_path, rep, t)
    line = status(tmp_path, 16, 360.0)
    assert "6/16 points done, about 2 min a point (measured), ETA 20 min" in line


def test_export_hands_the_plan_to_the_progress_command(monkeypatch, capsys, tmp_path):
    plan = Plan({**BASE, "results_dir": str(tmp_path)}, base_dir=REPO)
    monkeypatch.delenv(ENV, raising=False)
    export(plan)
    given = json.loads(os.environ[ENV])
    runs = plan.runs()
    assert given["total"] == len(runs) and given["results"] == str(tmp_path)
    assert given["per_point_s"] == pytest.approx(sum(r.expected_s for r in runs) / len(runs), 0.01)
    assert main(["progress"]) == 0
    assert f"0/{len(runs)} points done" in capsys.readouterr().err
    monkeypatch.delenv(ENV)
    assert main(["progress"]) == 2  # nothing to go on: says what to give
    assert "give RESULTS, --total and --per-point-s" in capsys.readouterr().err


def test_a_targeted_run_counts_the_points_its_targets_need(monkeypatch, tmp_path):
    """`snakemake H2B` measures H2B's points and H0's on H2B's stack (its U_work): the
    progress line counts those, not the whole plan's, done or not."""
    plan = Plan({**BASE, "results_dir": str(tmp_path)}, base_dir=REPO)
    monkeypatch.delenv(ENV, raising=False)
    export(plan, ["H2B"])
    given = json.loads(os.environ[ENV])
    needed = plan.runs_for(["H2B"])
    assert given["dirs"] == ["H0/B", "H2B/B"]
    assert given["total"] == len(needed) < len(plan.runs())
    for hyp, stack in [("H0", "B"), ("H0", "A"), ("H6", "B")]:
        run = layout.path(tmp_path, layout.RUN, hyp=hyp, stack=stack, point="p", rep=0)
        run.parent.mkdir(parents=True, exist_ok=True)
        run.write_text("{}")
    r, w = os.pipe()
    report(w)
    os.close(w)
    assert os.read(r, 200).decode().startswith(f"progress: 1/{len(needed)} points done")
    for whole in (["H_all"], [], ["H2B", "results/summary/verdicts.md"]):
        export(plan, whole)
        given = json.loads(os.environ[ENV])
        assert (given["dirs"], given["total"]) == (None, len(plan.runs())), whole


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--total", "5", "--per-point-s", "-5"], "'-5' is not a number of seconds"),
        (["--total", "5", "--per-point-s", "nan"], "'nan' is not a number of seconds"),
        (["--total", "0", "--per-point-s", "5"], "'0' is not a number of points"),
    ],
)
def test_bad_progress_arguments_are_refused_naming_them(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        main(["progress", str(tmp_path), *args])
    assert message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["progress", str(tmp_path / "missing"), "--total", "5", "--per-point-s", "5"])
    assert "is not a folder" in capsys.readouterr().err


def test_the_load_generator_reports_progress_on_the_fd_it_is_given(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, json.dumps({"results": str(tmp_path), "total": 4, "per_point_s": 9}))
    r, w = os.pipe()
    report(w)
    os.close(w)
    assert os.read(r, 200).decode().startswith("progress: 0/4 points done, about 9 s a point")
    report(w)  # a closed fd is no error: progress is a courtesy, never a failed point
    monkeypatch.delenv(ENV)
    r2, w2 = os.pipe()
    report(w2)  # outside the workflow: nothing to say
    os.close(w2)
    assert os.read(r2, 10) == b""


@pytest.mark.workflow
def test_snakemake_prints_progress_as_each_point_starts(tmp_path):
    root = copy_workflow(tmp_path / "repo")
    write_config(root, SMALL)
    # H2B's target measures H0 on stack B (its U_work: two points) and H2B's two points,
    # of the plan's six; `--until loadgen` stops at H0's two measurements
    run = snakemake(root, "H2B", "--until", "loadgen")
    assert run.returncode == 0, run.out[-3000:]
    assert re.search(r"progress: 0/4 points done, about \d+ s a point \(planned\)", run.out)
    assert "progress: 1/4 points done" in run.out
