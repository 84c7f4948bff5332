"""``spark-harness preflight``: is this machine ready for a plan's real stacks?

A plan on a DGX Spark runs for hours; what stops it in its first minutes (no Docker, no
NVIDIA runtime, an image not pulled, two TensorRT-LLM builds, a model not downloaded,
too little NVMe for G3) is checked here in seconds, each failure with what to fix.
Nothing is started but short-lived docker queries (one `docker run` per image to
read its TensorRT-LLM version, under the stacks' own --user, so a uid problem shows
here too). Exit status 1 when anything must be fixed first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spark_harness.plan import Plan, PlanError, deep_merge, load_config
from spark_harness.telemetry.cache import DROP_CACHES

DEFAULT_CONFIGS = (Path("config/config.yaml"), Path("config/spark.yaml"))
#: the package version read without importing it (no GPU needed)
VERSION_PY = "from importlib.metadata import version; print(version('tensorrt_llm'))"
#: the image's own user: another uid works with HOME=/tmp, but is the first suspect
IMAGE_UID = 1000
QUERY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Check:
    """One finding: ``ok``, ``warn`` (works, but read this) or ``fail`` (fix first)."""

    status: str
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"{self.status.upper():4}  {self.name}: {self.detail}"
        return text + (f"\n      fix: {self.fix}" if self.fix and self.status != "ok" else "")


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)


def _why(proc: subprocess.CompletedProcess[str]) -> str:
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def _servers(plan: Plan) -> list[dict[str, Any]]:
    """The command stacks of a plan, each once (by name and image)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in plan.runs():
        s = r.spec["server"]
        if s["kind"] == "command":
            seen.setdefault((s["name"], str(s.get("params", {}).get("image"))), s)
    return list(seen.values())


def check_docker() -> list[Check]:
    if shutil.which("docker") is None:
        return [Check("fail", "docker", "not on PATH", "install Docker Engine")]
    proc = _run(["docker", "info", "--format", "{{json .Runtimes}}"])
    if proc.returncode != 0:
        return [
            Check(
                "fail",
                "docker",
                f"the daemon does not answer: {_why(proc)}",
                "start it (`sudo systemctl start docker`) and add yourself to the "
                "docker group (`sudo usermod -aG docker $USER`, then log in again)",
            )
        ]
    out = [Check("ok", "docker", "daemon answers")]
    if "nvidia" in proc.stdout:
        out.append(Check("ok", "nvidia runtime", "registered with Docker"))
    else:
        out.append(
            Check(
                "fail",
                "nvidia runtime",
                f"not among Docker's runtimes {proc.stdout.strip()}",
                "install nvidia-container-toolkit, then `sudo nvidia-ctk runtime "
                "configure --runtime=docker && sudo systemctl restart docker`",
            )
        )
    return out


def _entrypoints(servers: Iterable[dict[str, Any]]) -> dict[str, set[str]]:
    """Image -> the commands the stacks run in it (the word after the image in argv)."""
    out: dict[str, set[str]] = {}
    for s in servers:
        image = s.get("params", {}).get("image")
        if image is None:
            continue
        cmds = out.setdefault(str(image), set())
        for proc in s["command"]["processes"]:
            argv = [str(a) for a in proc.get("argv", [])]
            if "{params.image}" in argv[:-1]:
                cmds.add(argv[argv.index("{params.image}") + 1])
    return out


def _probe(commands: Iterable[str]) -> str:
    """A shell line that fails naming a missing command, else prints the version."""
    tests = "".join(
        f'command -v {c} >/dev/null || {{ echo "{c} is not in the image" >&2; exit 3; }}; '
        for c in sorted(commands)
    )
    return f'{tests}exec python3 -c "{VERSION_PY}"'


def check_images(servers: Iterable[dict[str, Any]]) -> list[Check]:
    """Every image pulled, holding the commands its stacks run, and one TensorRT-LLM
    version across them (A vs B0 is then Dynamo alone)."""
    out: list[Check] = []
    versions: dict[str, str] = {}
    user = f"{os.getuid()}:{os.getgid()}"
    for image, commands in sorted(_entrypoints(servers).items()):
        if _run(["docker", "image", "inspect", image]).returncode != 0:
            out.append(Check("fail", "image", f"{image} is not pulled", f"docker pull {image}"))
            continue
        probe = _probe(commands)
        proc = _run(["docker", "run", "--rm", "--user", user, "-e", "HOME=/tmp",
                     "--entrypoint", "sh", image, "-c", probe])  # fmt: skip
        if proc.returncode != 0:
            fix = (f"check that {image} is a TensorRT-LLM image that runs as uid {user} "
                   "(docs/SPARK.md, 'Your uid')")  # fmt: skip
            out.append(Check("fail", "image", f"{image}: {_why(proc)}", fix))
            continue
        versions[image] = proc.stdout.strip().splitlines()[-1]
        out.append(Check("ok", "image", f"{image}: TensorRT-LLM {versions[image]}, "
                         f"has {', '.join(sorted(commands))}"))  # fmt: skip
    if len(set(versions.values())) > 1:
        found = ", ".join(f"{i} has {v}" for i, v in versions.items())
        fix = "give every stack the same `params.image` (docs/SPARK.md)"
        out.append(Check("fail", "TensorRT-LLM versions", f"differ: {found}", fix))
    return out


def _hf_cache(server: dict[str, Any], home: Path) -> Path:
    """The host folder a stack mounts as its Hugging Face cache."""
    return Path(
        str(server.get("params", {}).get("hf_cache", home / ".cache/huggingface")).replace(
            "{env.HOME}", str(home)
        )
    )


def check_models(servers: Iterable[dict[str, Any]], home: Path) -> list[Check]:
    out = []
    for model, hf_home in sorted({(s["model"], _hf_cache(s, home)) for s in servers}):
        snapshots = hf_home / "hub" / ("models--" + model.replace("/", "--")) / "snapshots"
        if snapshots.is_dir() and any(snapshots.iterdir()):
            out.append(Check("ok", "model", f"{model} in {hf_home}"))
        else:
            out.append(
                Check(
                    "fail",
                    "model",
                    f"{model} is not in {hf_home}",
                    f"HF_HOME={hf_home} hf download {model}",
                )
            )
    return out


def check_g3_space(servers: Iterable[dict[str, Any]], results: Path) -> list[Check]:
    """G3 is created in each point's scratch directory under the results folder."""
    need = max((float(s.get("params", {}).get("disk_cache_gb") or 0) for s in servers), default=0)
    if not need:
        return []
    where = next(p for p in (results, *results.parents) if p.exists())
    free = shutil.disk_usage(where).free / 1e9
    if free < need:
        return [
            Check(
                "fail",
                "NVMe space",
                f"{free:.0f} GB free at {where}, G3 needs {need:.0f} GB",
                "free space there, or set results_dir to a folder on the NVMe",
            )
        ]
    return [Check("ok", "NVMe space", f"{free:.0f} GB free at {where} (G3 needs {need:.0f} GB)")]


def check_host(drop_caches: Path = DROP_CACHES) -> list[Check]:
    out = []
    if os.access(drop_caches, os.W_OK):
        out.append(Check("ok", "page-cache drop", f"{drop_caches} is writable"))
    else:
        out.append(
            Check(
                "warn",
                "page-cache drop",
                f"{drop_caches} is not writable: cold "
                "starts evict the adapters' files only (fadvise)",
                "run the plan as root for system-wide drops",
            )
        )
    if os.getuid() != IMAGE_UID:
        out.append(
            Check(
                "warn",
                "user",
                f"uid {os.getuid()} is not the images' uid "
                f"{IMAGE_UID}: containers run with HOME=/tmp",
                "if a container fails with 'Permission denied', see docs/SPARK.md",
            )
        )
    return out


def preflight(configs: list[Path], home: Path) -> list[Check]:
    config: dict[str, Any] = {}
    try:
        for f in configs:
            config = deep_merge(config, load_config(f))
        plan = Plan(config)
        servers = _servers(plan)
    except PlanError as e:  # engine limits and memory budgets are checked here
        return [Check("fail", "plan", str(e), "correct the config files")]
    checks = [Check("ok", "plan", f"{len(plan.runs())} runs, every memory budget fits")]
    if not servers:
        return [*checks, Check("ok", "stacks", "no command stacks: nothing else to check")]
    checks += check_docker()
    if all(c.status == "ok" for c in checks):
        checks += check_images(servers)
    checks += check_models(servers, home)
    checks += check_g3_space(servers, Path(plan.results).resolve())
    return checks + check_host()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preflight",
        help="check this machine is ready for a plan's real stacks (docs/SPARK.md)",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    p.add_argument(
        "--configfile",
        type=Path,
        action="append",
        help="config file(s), later ones override (default: config/config.yaml "
        "and config/spark.yaml)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    checks = preflight(args.configfile or list(DEFAULT_CONFIGS), Path.home())
    for c in checks:
        print(c.line())
    failed = sum(c.status == "fail" for c in checks)
    print(f"{failed} to fix" if failed else "ready", file=sys.stderr)
    return 1 if failed else 0
