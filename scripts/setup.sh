#!/usr/bin/env bash
# Set up edgebuild in ./.venv with every toolchain this host can run. Idempotent; safe to rerun.
#   bash scripts/setup.sh            # everything (the README quickstart)
# The order matters: torch==2.13.0 first (a CPU build; any other torch spec would pull multi-GB
# CUDA wheels), then edgebuild with its extras, which find torch already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPIP=".venv/bin/python -m pip"
$VPIP install -q --upgrade pip
$VPIP install -q torch==2.13.0
$VPIP install -q -e ".[dev]"
echo "edgebuild installed in .venv ($(.venv/bin/edgebuild --version))"
