#!/usr/bin/env bash
# Weak scaling of data-parallel training: the step time of 2 ranks x 1 thread
# against 1 rank x 1 thread on the same per-rank batch. With perfect overlap of
# gradient all-reduce and backward, the 2-rank step costs no more than the
# single one; the goal is at most 1.1x. Ranks are started with torchrun's
# variables on loopback (Gloo), rank 0 hosting the store. A control run of two
# independent 1-rank processes at once separates what sharing the machine
# costs from what the gradient all-reduce costs.
#
#   scripts/bench_ddp.sh                 # transformer-sized model, 20 steps (minutes)
#   scripts/bench_ddp.sh --smoke         # tiny model, 3 steps: checks the script works
#   scripts/bench_ddp.sh --steps 50 --per-rank-batch 16
#
# The model is kmidi_distributed_driver's byte-level transformer (6 layers,
# d_model 512, 8 heads, feed-forward 2048, 128 tokens per sequence) on the
# bytes of data/pop909-sample. To benchmark the real generator instead, pass
# the command that trains it; it must print `median_step_ms <ms>` on rank 0's
# stdout (the driver does), and --two-rank-args is appended for the 2-rank run
# (e.g. a global batch size twice the single run's):
#
#   scripts/bench_ddp.sh --command "build/kmidi train --config configs/midi_generator.yaml run.device=cpu" \
#                        --two-rank-args "train.batch_size=16"
#
# Environment: KMIDI_BUILD_DIR [build], BENCH_PORT [29650].
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${KMIDI_BUILD_DIR:-$ROOT/build}
PORT=${BENCH_PORT:-29650}
STEPS=20
PER_RANK_BATCH=8
SMOKE=0
COMMAND=""
TWO_RANK_ARGS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --steps) STEPS=$2; shift ;;
    --per-rank-batch) PER_RANK_BATCH=$2; shift ;;
    --command) COMMAND=$2; shift ;;
    --two-rank-args) TWO_RANK_ARGS=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench_ddp.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

OUT=$(mktemp -d "${TMPDIR:-/tmp}/kmidi-bench-ddp.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

if [ -z "$COMMAND" ]; then
  DRIVER=$BUILD_DIR/kmidi_distributed_driver
  if [ ! -x "$DRIVER" ]; then
    echo "bench_ddp.sh: $DRIVER is missing; build it: cmake --build $BUILD_DIR --target kmidi_distributed_driver" >&2
    exit 2
  fi
  DATA=()
  for f in "$ROOT"/data/pop909-sample/*.mid; do DATA+=(--data "$f"); done
  if [ "$SMOKE" = 1 ]; then
    MODEL=(--model-dim 32 --ff-dim 64 --layers 1 --heads 2 --window 16)
    STEPS=3
  else
    MODEL=(--model-dim 512 --ff-dim 2048 --layers 6 --heads 8 --window 128)
  fi
  BASE=("$DRIVER" "${DATA[@]}" "${MODEL[@]}" --steps "$STEPS" --optimizer adam --lr 0.0001 --threads 1
        --timing-warmup 1 --timeout 600)
  SINGLE=("${BASE[@]}" --global-batch "$PER_RANK_BATCH")
  PAIR=("${BASE[@]}" --global-batch $((2 * PER_RANK_BATCH)))
else
  read -r -a SINGLE <<<"$COMMAND"
  read -r -a EXTRA <<<"$TWO_RANK_ARGS"
  PAIR=("${SINGLE[@]}" "${EXTRA[@]}")
fi

median_ms() {  # the step time a run printed
  local value
  value=$(sed -n 's/^median_step_ms \([0-9.]*\)$/\1/p' "$1" | tail -n 1)
  if [ -z "$value" ]; then
    echo "bench_ddp.sh: no 'median_step_ms' line in $1:" >&2
    tail -n 20 "$1" >&2
    exit 1
  fi
  echo "$value"
}

echo "bench_ddp: 1 rank x 1 thread, per-rank batch $PER_RANK_BATCH, $STEPS steps" >&2
OMP_NUM_THREADS=1 "${SINGLE[@]}" >"$OUT/single.out" 2>"$OUT/single.err" || {
  cat "$OUT/single.err" >&2
  exit 1
}
ONE=$(median_ms "$OUT/single.out")

echo "bench_ddp: 2 ranks x 1 thread, per-rank batch $PER_RANK_BATCH, $STEPS steps" >&2
PIDS=()
for RANK in 0 1; do
  env OMP_NUM_THREADS=1 RANK=$RANK WORLD_SIZE=2 LOCAL_RANK=$RANK LOCAL_WORLD_SIZE=2 \
    MASTER_ADDR=127.0.0.1 MASTER_PORT="$PORT" \
    "${PAIR[@]}" >"$OUT/rank$RANK.out" 2>"$OUT/rank$RANK.err" &
  PIDS+=($!)
done
FAILED=0
for i in 0 1; do
  if ! wait "${PIDS[$i]}"; then
    echo "bench_ddp.sh: rank $i failed:" >&2
    tail -n 20 "$OUT/rank$i.err" >&2
    FAILED=1
  fi
done
[ "$FAILED" = 0 ] || exit 1
TWO=$(median_ms "$OUT/rank0.out")

# Control: two independent 1-rank runs at once, nothing communicated. Their
# step time is what sharing the machine's cores, caches and memory costs by
# itself; the 2-rank run's excess over it is what data parallelism costs.
echo "bench_ddp: control: two independent 1-rank runs at the same time" >&2
PIDS=()
for i in 0 1; do
  OMP_NUM_THREADS=1 "${SINGLE[@]}" >"$OUT/control$i.out" 2>"$OUT/control$i.err" &
  PIDS+=($!)
done
for i in 0 1; do
  wait "${PIDS[$i]}" || { tail -n 20 "$OUT/control$i.err" >&2; exit 1; }
done
C0=$(median_ms "$OUT/control0.out")
C1=$(median_ms "$OUT/control1.out")

awk -v one="$ONE" -v two="$TWO" -v c0="$C0" -v c1="$C1" 'BEGIN {
  ratio = two / one
  control = (c0 + c1) / 2
  printf "1 rank:  %10.2f ms/step\n2 ranks: %10.2f ms/step\nratio:   %10.3f (goal <= 1.100: %s)\n",
         one, two, ratio, ratio <= 1.1 ? "met" : "NOT met"
  printf "control: %10.2f ms/step (two 1-rank runs at once: %.2f, %.2f)\n", control, c0, c1
  printf "sharing the machine alone: %.3f x; data parallelism beyond that: %.3f x\n", control / one, two / control
}'
