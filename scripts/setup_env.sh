#!/usr/bin/env bash
# Create the project's virtual environment: bash scripts/setup_env.sh [VENV_DIR]
# An already installed torch is reused (the venv sees it); otherwise torch==${TORCH_VERSION} is installed, which
# on this project's machines is a local CPU build. Set TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu)
# to choose another build.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"
torch_version="${TORCH_VERSION:-2.13.0}"

if "$python" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] reusing the torch installed for $python ($("$python" -c 'import torch; print(torch.__version__)'))"
    "$python" -m venv --system-site-packages "$venv"
else
    "$python" -m venv "$venv"
    echo "[setup] installing torch==$torch_version"
    "$venv/bin/pip" install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$torch_version"
fi
"$venv/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1 || true
# The tested versions (constraints.txt): a release of a dependency changes what the lab measures and what its
# docs say (transformers 5.25 gave Falcon's config the key-value head count that prefix tuning reads).
"$venv/bin/pip" install --quiet -c constraints.txt -e ".[dev]"
echo "[setup] ready: $venv"
