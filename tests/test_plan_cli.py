"""``spark-harness plan``: bad input named before anything runs, config files layered as
Snakemake layers them, the workflow root found from any folder, the plan's duration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from spark_harness.cli import main
from tests.conftest import REPO, copy_workflow
from tests.workflow.smk import snakemake


def plan_cli(
    capsys: pytest.CaptureFixture[str], *args: str, cwd: Path = REPO
) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        rc = main(["plan", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def runs_of(out: str) -> list[str]:
    return out.splitlines()


def test_spark_yaml_alone_resolves_like_snakemake_layers_it(capsys):
    """`--configfile config/spark.yaml` alone is config/config.yaml + spark.yaml."""
    rc, alone, err = plan_cli(capsys, "--configfile", "config/spark.yaml")
    assert rc == 0, err
    rc, both, _ = plan_cli(
        capsys, "--configfile", "config/config.yaml", "--configfile", "config/spark.yaml"
    )
    assert rc == 0 and alone == both
    assert len(runs_of(alone)) == 132


def test_plan_states_its_expected_duration(capsys):
    rc, _, err = plan_cli(capsys, "--configfile", "config/spark.yaml")
    assert rc == 0
    m = re.search(r"132 runs, expected ([\d.]+) h one after another \(([\d.]+) h of phases", err)
    assert m, err
    # 132 points of 10 + 30 + 300 + 10 s, plus a start-up each
    assert float(m.group(2)) == pytest.approx(132 * 350 / 3600, abs=0.05)
    assert float(m.group(1)) > float(m.group(2))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hyp", "H10"], r"unknown hypothesis H10: the plan has H0, H1, H2A, .*H9"),
        (["--hyp", "H0", "--stack", "C"], r"unknown stack C: the plan has A, B"),
        (["--configfile", "config/sparkk.yaml"], r"file not found: config/sparkk\.yaml"),
    ],
)
def test_unknown_hypothesis_stack_or_file_exits_non_zero_naming_it(capsys, args, message):
    rc, out, err = plan_cli(capsys, *args)
    assert rc == 2 and out == ""
    assert re.search(message, err), err


def test_a_mistyped_sweep_key_fails_naming_it(capsys, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        yaml.safe_dump(
            {
                "hypotheses": {
                    "H0": {"sweep": [{"key": "load.userz", "role": "concurrency", "values": [1]}]}
                }
            }
        )
    )
    rc, out, err = plan_cli(capsys, "--configfile", str(typo))
    assert rc == 2 and out == ""
    assert "hypotheses.H0.sweep: key load.userz" in err and "'userz' was unexpected" in err


def test_stack_files_resolve_from_the_workflow_root_not_the_current_folder(capsys, tmp_path):
    rc, from_root, _ = plan_cli(capsys, "--hyp", "H0")
    assert rc == 0 and from_root
    rc, from_sub, err = plan_cli(capsys, "--hyp", "H0", cwd=REPO / "config" / "stacks")
    assert rc == 0 and from_sub == from_root, err
    rc, _, err = plan_cli(capsys, "--hyp", "H0", cwd=tmp_path)
    assert rc == 2 and f"no Snakefile in {tmp_path.resolve()} or above" in err
    rc, from_elsewhere, _ = plan_cli(
        capsys, "--hyp", "H0", "--workflow-root", str(REPO), cwd=tmp_path
    )
    assert rc == 0 and from_elsewhere == from_root
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


@pytest.mark.workflow
def test_snakemake_plans_the_points_the_cli_lists(capsys, tmp_path):
    """One layering for both: the loadgen jobs of a dry run are the CLI's runs."""
    root = copy_workflow(tmp_path / "repo")
    dry = snakemake(root, "-n", "H0", "--configfile", "config/spark.yaml")
    assert dry.returncode == 0, dry.out[-2000:]
    planned = sorted(
        f"{w['hyp']}/{w['stack']}/{w['point']}/r{w['rep']}" for w in dry.planned("loadgen")
    )
    rc, out, _ = plan_cli(capsys, "--configfile", "config/spark.yaml", "--hyp", "H0", cwd=root)
    assert rc == 0 and planned == sorted(runs_of(out)) and len(planned) == 9 * 2 * 3


def test_a_hypothesis_lists_the_points_its_target_runs_with_it(capsys, tmp_path):
    """H2A runs at U_work: its target also measures H0 on its stack, and an analytical
    hypothesis measures its sources' points; the CLI counts them as Snakemake runs them."""
    root = copy_workflow(tmp_path / "repo")
    for hyp, needed in (("H2A", "H0"), ("H8A", "H0, H2A, H4A")):
        dry = snakemake(root, "-n", hyp)
        assert dry.returncode == 0, dry.out[-2000:]
        planned = sorted(
            f"{w['hyp']}/{w['stack']}/{w['point']}/r{w['rep']}" for w in dry.planned("loadgen")
        )
        rc, out, err = plan_cli(capsys, "--hyp", hyp, cwd=root)
        assert rc == 0 and planned == sorted(runs_of(out))
        assert f"runs (with {needed}, which they need)" in err


@pytest.mark.workflow
def test_snakemake_stops_on_a_mistyped_sweep_key_before_running_anything(tmp_path):
    root = copy_workflow(tmp_path / "repo")
    typo = root / "typo.yaml"
    typo.write_text(
        yaml.safe_dump(
            {
                "hypotheses": {
                    "H0": {"sweep": [{"key": "load.userz", "role": "concurrency", "values": [1]}]}
                }
            }
        )
    )
    run = snakemake(root, "H0", "--configfile", "typo.yaml")
    assert run.returncode != 0
    assert "hypotheses.H0.sweep: key load.userz" in run.out
    assert not (root / "results").exists()


@pytest.mark.workflow
def test_snakemake_names_the_plans_hypotheses_for_a_target_it_lacks(tmp_path):
    root = copy_workflow(tmp_path / "repo")
    config = yaml.safe_load((root / "config/config.yaml").read_text())
    config["hypotheses"] = {h: config["hypotheses"][h] for h in ("H0", "H1")}
    (root / "config/config.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(root, "-n", "H5")
    assert run.returncode != 0
    assert "H5 is not in the plan (config `hypotheses`: H0, H1)" in run.out
