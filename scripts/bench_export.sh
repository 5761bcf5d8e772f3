#!/usr/bin/env bash
# Export time per model and CPU inference latency at batch 1: onnxruntime
# (onnxruntime-node, one intra-op thread, the engines' settings) beside
# LibTorch eager (one thread), median and p90 of N runs, for the MIDI generator
# (full graph at sequence 256, one incremental step after 255 cached tokens)
# and spectocloud (64 frames). Goals (issue 6): an incremental generator step
# under 5 ms, a spectocloud forward under 8 ms, on one core.
#
#   scripts/bench_export.sh [--runs N] [--warmup W] [--sequence S] [--frames F]
#                           [--configs DIR|FILE]...
#     --runs N      timed runs per measurement (default 50)
#     --warmup W    untimed runs first (default 5)
#     --configs X   also run `kmidi export --all` on these model configs (their
#                   runs must have checkpoints) and report each model's export
#                   time (checks and parity included) from its summary
#   KMIDI_BUILD_DIR build folder (default: build); export_bench and kmidi are built there
#
# Pins everything to one core (taskset) when available. Run it on a quiet
# machine: other processes on the cores skew every figure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KMIDI_BUILD_DIR:-$ROOT/build}
RUNS=50
WARMUP=5
SEQUENCE=256
FRAMES=64
CONFIGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --sequence) SEQUENCE=$2; shift 2 ;;
    --frames) FRAMES=$2; shift 2 ;;
    --configs) CONFIGS+=("$2"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench_export.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
cmake --build "$BUILD" --target export_bench kmidi >/dev/null
PIN=()
if command -v taskset >/dev/null; then PIN=(taskset -c 0); fi
OUT=$(mktemp -d /tmp/kmidi_bench_export.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

echo "kmidi export benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "median/p90 of $RUNS runs after $WARMUP warm-up runs; one thread; batch 1"
echo
OMP_NUM_THREADS=1 "${PIN[@]}" "$BUILD/tests/export/export_bench" --runs "$RUNS" --warmup "$WARMUP" \
  --sequence "$SEQUENCE" --frames "$FRAMES" --out "$OUT/graphs"

if [ ${#CONFIGS[@]} -gt 0 ]; then
  echo
  echo "Export time per model (kmidi export --all: checks and onnxruntime parity included):"
  set +e
  OMP_NUM_THREADS=1 "${PIN[@]}" "$BUILD/kmidi" --log-level warn export --all --configs "${CONFIGS[@]}" --out "$OUT/models"
  status=$?
  set -e
  [ "$status" -eq 0 ] || { echo "bench_export.sh: kmidi export --all failed ($status)" >&2; exit "$status"; }
fi
