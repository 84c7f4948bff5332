"""``spark-harness preflight`` against a fake ``docker`` on PATH: what it finds on a
ready machine, and for each thing that would stop a Spark plan, that it says what to fix
(and exits 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spark_harness.cli import main
from tests.conftest import REPO

IMAGE = "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.6.1"
MODEL = "nvidia/Llama-3.1-8B-Instruct-NVFP4"

#: answers like docker's: `info` lists runtimes, `image inspect` knows the images in
#: $FAKE/images, `run IMAGE` prints the version listed for it in $FAKE/versions unless
#: the probe asks for a command listed in $FAKE/missing
FAKE_DOCKER = """#!/bin/sh
case "$1" in
  info) [ -e "$FAKE/down" ] && { echo "Cannot connect to the Docker daemon" >&2; exit 1; }
        cat "$FAKE/runtimes" ;;
  image) grep -qxF "$3" "$FAKE/images" ;;
  run) for a in "$@"; do case "$a" in *:*) img="$a";; esac; done
       echo "$@" >> "$FAKE/runs"
       for c in $(cat "$FAKE/missing" 2>/dev/null); do
         case "$*" in *"command -v $c "*) echo "$c is not in the image" >&2; exit 3;; esac
       done
       v=$(grep -F "$img " "$FAKE/versions" | cut -d' ' -f2)
       [ -n "$v" ] || { echo "ModuleNotFoundError: tensorrt_llm" >&2; exit 1; }
       echo "$v" ;;
esac
"""


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ready Spark: Docker with the NVIDIA runtime, the image pulled, the model cached,
    a small G3 so the temporary folder's disk holds it."""
    fake = tmp_path / "fake"
    (fake / "bin").mkdir(parents=True)
    docker = fake / "bin/docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (fake / "runtimes").write_text('{"nvidia":{"path":"nvidia-container-runtime"},"runc":{}}\n')
    (fake / "images").write_text(IMAGE + "\n")
    (fake / "versions").write_text(f"{IMAGE} 1.3.0rc29\n")
    snapshot = tmp_path / f"home/.cache/huggingface/hub/models--{MODEL.replace('/', '--')}"
    (snapshot / "snapshots/abc").mkdir(parents=True)
    monkeypatch.setenv("FAKE", str(fake))
    monkeypatch.setenv("PATH", f"{fake / 'bin'}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(REPO)
    return fake


def _preflight(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], **extra: object
) -> tuple[int, str]:
    """Run the CLI on config.yaml + spark.yaml + an override (results in tmp_path)."""
    override = {"results_dir": str(tmp_path / "results"),
                "defaults": {"server": {"params": {"disk_cache_gb": 1}}}, **extra}  # fmt: skip
    (tmp_path / "override.yaml").write_text(yaml.safe_dump(override))
    files = [REPO / "config/config.yaml", REPO / "config/spark.yaml", tmp_path / "override.yaml"]
    rc = main(["preflight", *(a for f in files for a in ("--configfile", str(f)))])
    return rc, capsys.readouterr().out


def test_a_ready_machine_passes(machine: Path, tmp_path: Path, capsys) -> None:
    rc, out = _preflight(tmp_path, capsys)
    assert rc == 0, out
    assert "OK    nvidia runtime" in out
    assert f"OK    image: {IMAGE}: TensorRT-LLM 1.3.0rc29, has python3, trtllm-serve" in out
    assert f"OK    model: {MODEL}" in out and "OK    NVMe space" in out
    assert "FAIL" not in out
    # the version is read as the stacks run: under the caller's uid, HOME=/tmp
    assert "--user" in (machine / "runs").read_text()


def test_two_tensorrt_llm_builds_fail(machine: Path, tmp_path: Path, capsys) -> None:
    other = "nvcr.io/nvidia/tensorrt-llm/release:spark-single-gpu-dev"
    (machine / "images").write_text(f"{IMAGE}\n{other}\n")
    (machine / "versions").write_text(f"{IMAGE} 1.3.0rc29\n{other} 1.1.0rc3\n")
    rc, out = _preflight(
        tmp_path, capsys, hypotheses={"H0": {"server": {"params": {"image": other}}}}
    )
    assert rc == 1
    assert f"TensorRT-LLM versions: differ: {IMAGE} has 1.3.0rc29, {other} has 1.1.0rc3" in out
    assert "fix: give every stack the same `params.image`" in out


@pytest.mark.parametrize(
    ("break_it", "expect"),
    [
        (lambda f: (f / "images").write_text(""), f"fix: docker pull {IMAGE}"),
        (lambda f: (f / "versions").write_text(""), "ModuleNotFoundError: tensorrt_llm"),
        (lambda f: (f / "missing").write_text("trtllm-serve"), "trtllm-serve is not in the image"),
        (
            lambda f: (f / "runtimes").write_text('{"runc":{}}'),
            "fix: install nvidia-container-toolkit",
        ),
        (lambda f: (f / "down").touch(), "FAIL  docker: the daemon does not answer"),
        (lambda f: (f / "bin/docker").unlink(), "FAIL  docker: not on PATH"),
    ],
)
def test_each_docker_problem_says_what_to_fix(
    machine: Path, tmp_path: Path, capsys, break_it, expect
) -> None:
    if "not on PATH" in expect and Path("/usr/bin/docker").exists():
        pytest.skip("a real docker is on /usr/bin")
    break_it(machine)
    rc, out = _preflight(tmp_path, capsys)
    assert rc == 1 and expect in out, out


def test_a_missing_model_and_too_little_nvme(machine: Path, tmp_path: Path, capsys) -> None:
    hub = tmp_path / "home/.cache/huggingface/hub"
    for snap in hub.glob("*/snapshots/*"):
        snap.rmdir()
    params = {"disk_cache_gb": 10**9}  # a petabyte of G3: no disk holds it
    rc, out = _preflight(tmp_path, capsys, defaults={"server": {"params": params}})
    assert rc == 1
    assert f"fix: HF_HOME={tmp_path}/home/.cache/huggingface hf download {MODEL}" in out
    assert "G3 needs 1000000000 GB" in out and "set results_dir to a folder on the NVMe" in out


def test_a_point_over_the_memory_budget_fails_before_docker_is_asked(
    machine: Path, tmp_path: Path, capsys
) -> None:
    h6 = {"server": {"params": {"free_gpu_memory_fraction": 0.6}}}
    rc, out = _preflight(tmp_path, capsys, hypotheses={"H6": h6})
    assert rc == 1
    assert "FAIL  plan: hypotheses.H6 point g2gb-64 (stack B): memory budget exceeded" in out
    assert "> 128 GB unified memory" in out and "docker" not in out
