#!/usr/bin/env bash
# Weak scaling of data-parallel training: the step time of 2 ranks x 1 thread
# against 1 rank x 1 thread on the same per-rank batch. With perfect overlap of
# gradient all-reduce and backward, the 2-rank step costs no more than the
# single one; the goal is at most 1.1x. Ranks are started with torchrun's
# variables on loopback (Gloo), rank 0 hosting the store. A control run of two
# independent 1-rank processes at once separates what sharing the machine
# costs from what the gradient all-reduce costs.
#
# A shared VM's speed drifts by 10-20% within minutes, so one reading of each
# is not a comparison: the three runs are repeated for --rounds rounds, in an
# order that rotates every round, and the ratios are taken within a round and
# reported as medians over rounds.
#
#   scripts/bench_ddp.sh                 # transformer-sized model, 5 rounds of 20 steps (~10 min)
#   scripts/bench_ddp.sh --smoke         # tiny model, 1 round of 3 steps: checks the script works
#   scripts/bench_ddp.sh --rounds 9 --steps 50 --per-rank-batch 16
#
# Two models:
# - by default kmidi_distributed_driver's byte-level transformer (6 layers,
#   d_model 512, 8 heads, feed-forward 2048, 128 tokens per row; 19 M
#   parameters, 76 MB of gradients per step) on the bytes of data/pop909-sample,
#   through the same gradient synchroniser and process settings as training;
# - with --generator, the MIDI generator as `kmidi train` trains it
#   (configs/midi_generator.yaml: 256 tokens per row, its log_every of 10) on
#   the prepared POP909 sample, 60 steps; its step time is the median over the
#   10-step intervals after the first of the elapsed_s its metrics.jsonl
#   records. (Logging every step would add a metrics all-reduce, and a
#   synchronisation, to every step that the real job does not have.)
#
#   scripts/bench_ddp.sh --generator --rounds 5
#
# Environment: KMIDI_BUILD_DIR [build], BENCH_PORT [29650].
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${KMIDI_BUILD_DIR:-$ROOT/build}
PORT=${BENCH_PORT:-29650}
STEPS=20
STEPS_GIVEN=0
ROUNDS=5
PER_RANK_BATCH=8
SMOKE=0
GENERATOR=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --steps) STEPS=$2; STEPS_GIVEN=1; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --per-rank-batch) PER_RANK_BATCH=$2; shift ;;
    --generator) GENERATOR=1 ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "bench_ddp.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

OUT=$(mktemp -d "${TMPDIR:-/tmp}/kmidi-bench-ddp.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

if [ "$GENERATOR" = 0 ]; then
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
    ROUNDS=1
  else
    MODEL=(--model-dim 512 --ff-dim 2048 --layers 6 --heads 8 --window 128)
  fi
  BASE=("$DRIVER" "${DATA[@]}" "${MODEL[@]}" --steps "$STEPS" --optimizer adam --lr 0.0001 --threads 1
        --timing-warmup 1 --timeout 600)
  SINGLE=("${BASE[@]}" --global-batch "$PER_RANK_BATCH")
  PAIR=("${BASE[@]}" --global-batch $((2 * PER_RANK_BATCH)))
else
  KMIDI=$BUILD_DIR/kmidi
  [ -x "$KMIDI" ] || { echo "bench_ddp.sh: $KMIDI is missing; build it first" >&2; exit 2; }
  command -v jq >/dev/null || { echo "bench_ddp.sh: --generator needs jq (scripts/setup.sh installs it)" >&2; exit 2; }
  LOG_EVERY=10
  [ "$STEPS_GIVEN" = 1 ] || STEPS=60
  if [ "$SMOKE" = 1 ]; then
    STEPS=4
    ROUNDS=1
    LOG_EVERY=1
  fi
  "$KMIDI" prepare --config "$ROOT/configs/prepare_pop909_sample.yaml" "output.dir=$OUT/data" >"$OUT/prepare.log" 2>&1 || {
    cat "$OUT/prepare.log" >&2
    exit 1
  }
  BASE=("$KMIDI" train --config "$ROOT/configs/midi_generator.yaml" "data.dir=$OUT/data" "run.output_dir=$OUT"
        run.device=cpu run.threads=1 run.tensorboard=false "train.max_steps=$STEPS" "train.log_every=$LOG_EVERY"
        train.eval_every=0 train.checkpoint_every=0 train.schedule.warmup_steps=1)
  SINGLE=("${BASE[@]}" "train.batch_size=$PER_RANK_BATCH")
  PAIR=("${BASE[@]}" "train.batch_size=$((2 * PER_RANK_BATCH))")
fi

# Each run is named: the driver ignores the name, `kmidi train` gets a run folder of its own.
run_args() {  # run_args NAME
  if [ "$GENERATOR" = 1 ]; then echo "run.name=$1"; fi
}

value_of() {  # value_of KEY FILE: the last "KEY <number>" line a run printed
  sed -n "s/^$1 \([0-9.]*\)\$/\1/p" "$2" | tail -n 1
}

median_ms() {  # median_ms NAME: the median step time of the run NAME (NAME.out, or its run folder)
  local value
  if [ "$GENERATOR" = 1 ]; then
    # Per-step time of each interval between logged steps but the first (warm-up), in ms.
    value=$(jq -r 'select(.split == "train") | "\(.step) \(.elapsed_s)"' "$OUT/$1/metrics.jsonl" 2>/dev/null |
      sort -n | awk 'NR > 2 { print ($2 - last_t) * 1000 / ($1 - last_s) } { last_s = $1; last_t = $2 }' | sort -n |
      awk '{ v[NR] = $1 } END { if (NR) printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  else
    value=$(value_of median_step_ms "$OUT/$1.out")
  fi
  if [ -z "$value" ]; then
    echo "bench_ddp.sh: no step times from run $1:" >&2
    tail -n 20 "$OUT/$1.out" "$OUT/$1.err" >&2 2>/dev/null || true
    exit 1
  fi
  echo "$value"
}

run_single() {  # run_single ROUND
  OMP_NUM_THREADS=1 "${SINGLE[@]}" $(run_args "single$1") >"$OUT/single$1.out" 2>"$OUT/single$1.err" || {
    tail -n 20 "$OUT/single$1.err" >&2
    exit 1
  }
}

run_pair() {  # run_pair ROUND: 2 ranks with torchrun's variables, rank 0 hosting the store
  local pids=() failed=0 rank
  for rank in 0 1; do
    env OMP_NUM_THREADS=1 RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank LOCAL_WORLD_SIZE=2 \
      MASTER_ADDR=127.0.0.1 MASTER_PORT="$PORT" \
      "${PAIR[@]}" $(run_args "pair$1") >"$OUT/pair$1.rank$rank.out" 2>"$OUT/pair$1.rank$rank.err" &
    pids+=($!)
  done
  for rank in 0 1; do
    if ! wait "${pids[$rank]}"; then
      echo "bench_ddp.sh: rank $rank failed:" >&2
      tail -n 20 "$OUT/pair$1.rank$rank.err" >&2
      failed=1
    fi
  done
  [ "$failed" = 0 ] || exit 1
}

# Control: two independent 1-rank runs at once, nothing communicated. Their
# step time is what sharing the machine's cores, caches and memory costs by
# itself; the 2-rank run's excess over it is what data parallelism costs.
run_control() {  # run_control ROUND
  local pids=() i
  for i in 0 1; do
    OMP_NUM_THREADS=1 "${SINGLE[@]}" $(run_args "control$1.$i") >"$OUT/control$1.$i.out" 2>"$OUT/control$1.$i.err" &
    pids+=($!)
  done
  for i in 0 1; do
    wait "${pids[$i]}" || { tail -n 20 "$OUT/control$1.$i.err" >&2; exit 1; }
  done
}

[ "$GENERATOR" = 1 ] && MODEL_NAME="the MIDI generator (kmidi train)" || MODEL_NAME="the driver's transformer"
echo "bench_ddp: $MODEL_NAME; $ROUNDS round(s) of: 1 rank x 1 thread; 2 ranks x 1 thread; control (two 1-rank runs at once);" \
     "per-rank batch $PER_RANK_BATCH, $STEPS steps each" >&2
ORDERS=("single pair control" "pair control single" "control single pair")
ROWS=$OUT/rounds.tsv
: >"$ROWS"
for ((round = 1; round <= ROUNDS; round++)); do
  for what in ${ORDERS[$(((round - 1) % 3))]}; do "run_$what" "$round"; done
  one=$(median_ms "single$round")
  if [ "$GENERATOR" = 1 ]; then two=$(median_ms "pair$round"); else two=$(median_ms "pair$round.rank0"); fi
  c0=$(median_ms "control$round.0")
  c1=$(median_ms "control$round.1")
  exposed=$(value_of median_finish_ms "$OUT/pair$round.rank0.out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$one" "$two" "$c0" "$c1" "${exposed:-nan}" >>"$ROWS"
  awk -F'\t' -v r="$round" '$1 == r {
    control = ($4 + $5) / 2
    printf "round %d: 1 rank %.1f ms, 2 ranks %.1f ms (ratio %.3f), control %.1f ms (sharing %.3f, data parallelism beyond it %.3f)",
           r, $2, $3, $3 / $2, control, control / $2, $3 / control
    if ($6 != "nan") printf ", wait after backward %s ms", $6
    printf "\n"
  }' "$ROWS" >&2
done

sort -n -k1 "$ROWS" | awk -F'\t' '
  function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    n++; one[n] = $2; two[n] = $3; control = ($4 + $5) / 2; ctl[n] = control
    ratio[n] = $3 / $2; sharing[n] = control / $2; beyond[n] = $3 / control; exposed[n] = $6
  }
  END {
    r = median(ratio, n)
    printf "rounds:  %d (medians over rounds; ratios taken within each round)\n", n
    printf "1 rank:  %10.2f ms/step\n2 ranks: %10.2f ms/step\n", median(one, n), median(two, n)
    printf "ratio:   %10.3f (goal <= 1.100: %s)\n", r, r <= 1.1 ? "met" : "NOT met"
    printf "control: %10.2f ms/step (two 1-rank runs at once)\n", median(ctl, n)
    printf "sharing the machine alone: %.3f x; data parallelism beyond that: %.3f x\n", median(sharing, n), median(beyond, n)
    if (exposed[1] != "nan")
      printf "wait after backward (2 ranks, rank 0: the last all-reduces and the slower rank): %.1f ms/step\n", median(exposed, n)
  }'
