#!/usr/bin/env bash
# Set up alsweep in ./.venv (idempotent: a second run only checks).
#  - Fashion-MNIST from Debian (apt-get install dataset-fashion-mnist) when running as root;
#  - a virtualenv with torch + torchvision installed FIRST, by pip, so that no other
#    resolver picks a torch build; override with ALSWEEP_TORCH="torch==X torchvision==Y";
#  - alsweep itself, editable (conf/ is read from this checkout), with the dev (and on x86-64 Linux, gpu) extras.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
FASHION_DIR=/usr/share/datasets/fashion-mnist

if [ ! -d "$FASHION_DIR" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q dataset-fashion-mnist >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; } \
      || echo "setup: warning: could not install dataset-fashion-mnist; alsweep will try torchvision's download"
  else
    echo "setup: note: $FASHION_DIR is missing; run 'sudo apt-get install dataset-fashion-mnist'" \
         "or let alsweep download Fashion-MNIST through torchvision (needs internet)"
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.alsweep-setup
wanted="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && .venv/bin/python -c "import torch, torchvision, hydra, mlflow" 2>/dev/null; then
  exit 0
fi

echo "setup: installing torch and torchvision (pip; several GB on a fresh machine)"
# shellcheck disable=SC2086  # ALSWEEP_TORCH is a list of requirement specifiers
.venv/bin/python -m pip install -q --disable-pip-version-check ${ALSWEEP_TORCH:-torch torchvision}
# the gpu extra (CuPy, ~70 MB; it finds NVRTC in torch's CUDA wheels) lets the tests compile every
# CUDA kernel source even without a GPU; CuPy ships x86-64 Linux wheels only
extras=dev
if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then extras=dev,gpu; fi
echo "setup: installing alsweep (editable) with its dependencies [$extras]"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
echo "$wanted" > "$stamp"
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
