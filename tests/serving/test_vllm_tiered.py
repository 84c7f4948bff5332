"""config/stacks/vllm-tiered.yaml against vLLM itself: no GPU here to serve it, so vLLM's
own argument parser reads the engine file each mode writes, and its own offloading
factory resolves the spec and tier names. The CPU build of vLLM 0.31 in the engines'
environment has the same parser and offloading code as the GPU build."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from spark_harness.plan import resolve_stack
from spark_harness.serving.command import resolve, write_files
from tests.conftest import REPO

PYTHON = Path(os.environ.get("SPARK_HARNESS_VLLM_PYTHON", REPO / ".venv-vllm/bin/python"))

pytestmark = pytest.mark.skipif(
    not PYTHON.exists(), reason=f"no vLLM environment at {PYTHON} (tools/install_vllm_cpu.sh)"
)

# What vLLM makes of each file: the parsed engine arguments, and for an offloading mode
# the spec class its factory picks and the metric families that spec defines.
READ_WITH_VLLM = """
import json, sys
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser
from vllm.v1.kv_offload.factory import OffloadingSpecFactory

out = {}
for path in sys.argv[1:]:
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(["--config", path])
    validate_parsed_serve_args(args)  # as vLLM's server entry point does
    engine = AsyncEngineArgs.from_cli_args(args)
    kv = engine.kv_transfer_config
    got = {"model": engine.model, "block_size": engine.block_size,
           "prefix_caching": engine.enable_prefix_caching, "kv": None}
    if kv is not None:
        extra = kv.kv_connector_extra_config
        spec = OffloadingSpecFactory.get_spec_cls(extra)
        got["kv"] = {"connector": kv.kv_connector, "role": kv.kv_role, "spec": spec.__name__,
                     "families": sorted(spec.build_metric_definitions(extra))}
    out[path] = got
print(json.dumps(out))
"""


def test_vllm_reads_every_modes_engine_file(tmp_path):
    files = {}
    for mode in ("B0", "B1", "B2"):
        r = resolve(
            resolve_stack(REPO / "config/stacks/vllm-tiered.yaml", mode),
            tmp_path / mode,
            "127.0.0.1",
            0,
        )
        (files[mode],) = write_files(r["files"])
    proc = subprocess.run(
        [str(PYTHON), "-c", READ_WITH_VLLM, *map(str, files.values())],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = {mode: json.loads(proc.stdout)[str(f)] for mode, f in files.items()}
    for mode, g in got.items():
        assert g["model"] == f"{tmp_path}/{mode}/model"
        assert (g["block_size"], g["prefix_caching"]) == (16, True)
    assert got["B0"]["kv"] is None
    assert got["B1"]["kv"]["spec"] == "CPUOffloadingSpec"
    b2 = got["B2"]["kv"]
    assert (b2["connector"], b2["role"], b2["spec"]) == (
        "OffloadingConnector",
        "kv_both",
        "TieringOffloadingSpec",
    )
    # the tiering spec defines the G3 byte counters the telemetry maps
    assert {"vllm:kv_offload_tiering_read_bytes", "vllm:kv_offload_tiering_write_bytes"} <= set(
        b2["families"]
    )
