#!/usr/bin/env bash
# Install NVIDIA Dynamo's frontend and CPU "mocker" engine (ai-dynamo 1.6.1) into a
# Python environment, for the dynamo-mocker stack and its integration test.
#
# The ai-dynamo wheel depends on `aisimulate`, which the package index cannot serve, so
# the two Dynamo wheels go in with --no-deps and their other requirements are listed
# here (docs/REFERENCE.md, "Dynamo frontend + mocker on a CPU machine").
#
# Usage: tools/install_dynamo.sh [PYTHON]     (default: python3 on PATH; use the
#        interpreter of the environment that runs spark-harness, e.g. .venv/bin/python)
set -euo pipefail

PYTHON="${1:-python3}"
DYNAMO_VERSION=1.6.1

"$PYTHON" -m pip install --no-deps \
    "ai-dynamo==${DYNAMO_VERSION}" "ai-dynamo-runtime==${DYNAMO_VERSION}"
"$PYTHON" -m pip install \
    aiohttp msgspec prometheus-client pyzmq redis "kubernetes<33" tqdm transformers \
    tokenizers zstandard certifi uvloop "pydantic<=2.13.5"
# the frontend and the mocker must import: fail here, not in the first test
"$PYTHON" -c "import dynamo.frontend, dynamo.mocker, transformers; print('dynamo', '${DYNAMO_VERSION}', 'ready')"
