#!/usr/bin/env bash
# The nightly export: every model config -> newest valid checkpoint -> checked
# ONNX files (onnx checker, shape inference, onnxruntime parity with LibTorch)
# -> registry.json, with a summary table. A thin wrapper of
# `kmidi export --all`; see export/README.md ("The export pipeline") for what
# the output folder and the registry hold when a model fails.
#
#   scripts/nightly_export.sh [--configs DIR|FILE]... [--out DIR] [--log FILE]
#     --configs   config files or folders (a folder's *.yaml with a top-level
#                 `task:` key); default: configs/
#     --out       published folder (default: exports/)
#     --log       also append the output to this file (default: <out>/nightly.log)
#   KMIDI_BIN     the kmidi binary (default: build/kmidi)
#
# Exit status: kmidi's (0 every model exported and registry.json written;
# 4 a model or the registry failed: yesterday's files of a failed model stay).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KMIDI=${KMIDI_BIN:-$ROOT/build/kmidi}
CONFIGS=()
OUT=$ROOT/exports
LOG=
while [ $# -gt 0 ]; do
  case "$1" in
    --configs) CONFIGS+=("$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --log) LOG=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "nightly_export.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=("$ROOT/configs")
[ -x "$KMIDI" ] || { echo "nightly_export.sh: $KMIDI not found; build it first (scripts/setup.sh)" >&2; exit 2; }
mkdir -p "$OUT"
LOG=${LOG:-$OUT/nightly.log}

echo "== kmidi nightly export $(date -u +%Y-%m-%dT%H:%M:%SZ) -> $OUT" | tee -a "$LOG"
set +e
"$KMIDI" export --all --configs "${CONFIGS[@]}" --out "$OUT" 2>&1 | tee -a "$LOG"
status=${PIPESTATUS[0]}
set -e
echo "== exit status $status" | tee -a "$LOG"
exit "$status"
