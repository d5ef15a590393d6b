#!/usr/bin/env bash
# The accelerator check on the device at hand: one JSON report (see benchmarks/accelerator_check.py).
#   benchmarks/accelerator_check.sh [OUT.json] [--tiny] [--sections gan simsiam ...]
# Runs from the repository root with $PYTHON (default: python); stops after 8 minutes, keeping the
# sections finished so far in the report.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-accelerator_check.json}"
shift || true
exec timeout --signal=INT 480 "${PYTHON:-python}" -m benchmarks.accelerator_check --out "$out" "$@"
