#!/usr/bin/env bash
# Set up edgebuild in ./.venv with every toolchain this host can run. Idempotent; safe to rerun.
#   bash scripts/setup.sh            # the README quickstart runs this
# Order matters: torch==2.13.0 first (a CPU build; any other torch spec would pull multi-GB CUDA
# wheels), then edgebuild with its extras, which find torch already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPIP=".venv/bin/python -m pip"
$VPIP install -q --upgrade pip
$VPIP install -q torch==2.13.0

# llama-cpp-python is source-only on PyPI and compiles for 3-6 minutes: build its wheel once into a
# cache folder and install from there afterwards (portable build: no -march=native).
LLAMA_CPP=0.3.36
WHEELS="${EDGEBUILD_WHEEL_CACHE:-$HOME/.cache/edgebuild/wheels}"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-$LLAMA_CPP-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_CPP once (a few minutes); later setups reuse $WHEELS"
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF" $VPIP wheel -q --no-deps "llama-cpp-python==$LLAMA_CPP" -w "$WHEELS"
fi
$VPIP install -q --find-links "$WHEELS" "llama-cpp-python==$LLAMA_CPP"
$VPIP install -q --find-links "$WHEELS" -e ".[all]"
# onnx2torch's declared dependencies pull torchvision, which replaces the CPU torch: install it alone
$VPIP install -q --no-deps onnx2torch==1.5.15

# Recipes whose libraries clash with the rest (onnx2tf pins tensorflow, numpy, onnx...) get their
# own environments, created once under ~/.cache/edgebuild/toolchains and used offline afterwards.
.venv/bin/edgebuild toolchain install -q
echo "edgebuild installed in .venv ($(.venv/bin/edgebuild --version))"
