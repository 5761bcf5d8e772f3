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
# With --generator, --driver-size trains the generator at the driver's size
# (d_model 512, 6 layers, 8 heads, feed-forward 2048, 128 tokens per row), and
# --peer runs, in the same rounds, the same three runs of the Python peer
# (scripts/bench_train_peer.py: the same architecture in Debian's
# python3-torch, with the tuned malloc variables, and 2 ranks through
# PyTorch's own DistributedDataParallel over Gloo with its default 25 MB
# buckets): PyTorch's weak scaling on the same machine, model and batch.
#
#   scripts/bench_ddp.sh --generator --driver-size --peer --rounds 5
#
# Environment: KMIDI_BUILD_DIR [build], BENCH_PORT [29650], BENCH_PEER_PORT [BENCH_PORT + 1].
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${KMIDI_BUILD_DIR:-$ROOT/build}
PORT=${BENCH_PORT:-29650}
PEER_PORT=${BENCH_PEER_PORT:-$((PORT + 1))}
STEPS=20
STEPS_GIVEN=0
ROUNDS=5
PER_RANK_BATCH=8
SMOKE=0
GENERATOR=0
DRIVER_SIZE=0
PEER=0
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --steps) STEPS=$2; STEPS_GIVEN=1; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --per-rank-batch) PER_RANK_BATCH=$2; shift ;;
    --generator) GENERATOR=1 ;;
    --driver-size) DRIVER_SIZE=1 ;;
    --peer) PEER=1 ;;
    -h|--help) sed -n '2,45p' "$0"; exit 0 ;;
    *) echo "bench_ddp.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

if [ "$GENERATOR" = 0 ] && [ "$DRIVER_SIZE$PEER" != 00 ]; then
  echo "bench_ddp.sh: --driver-size and --peer need --generator" >&2
  exit 2
fi

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
  # The peer's defaults are configs/midi_generator.yaml's model.
  SIZE=() PEER_SIZE=()
  if [ "$DRIVER_SIZE" = 1 ]; then
    SIZE=(model.d_model=512 model.n_layers=6 model.n_heads=8 model.d_ff=2048 data.max_length=128)
    PEER_SIZE=(--d-model 512 --layers 6 --heads 8 --d-ff 2048 --length 128)
  fi
  if [ "$SMOKE" = 1 ]; then
    SIZE=(model.d_model=32 model.n_layers=1 model.n_heads=2 model.d_ff=64 data.max_length=32)
    PEER_SIZE=(--d-model 32 --layers 1 --heads 2 --d-ff 64 --length 32)
  fi
  BASE=("$KMIDI" train --config "$ROOT/configs/midi_generator.yaml" "data.dir=$OUT/data" "run.output_dir=$OUT"
        run.device=cpu run.threads=1 run.tensorboard=false "train.max_steps=$STEPS" "train.log_every=$LOG_EVERY"
        train.eval_every=0 train.checkpoint_every=0 train.schedule.warmup_steps=1 "${SIZE[@]}")
  SINGLE=("${BASE[@]}" "train.batch_size=$PER_RANK_BATCH")
  PAIR=("${BASE[@]}" "train.batch_size=$((2 * PER_RANK_BATCH))")
  # The peer times each step itself (forward, backward, optimizer), after a warm-up.
  PEER_STEPS=20 PEER_WARMUP=3
  [ "$SMOKE" = 1 ] && PEER_STEPS=3 PEER_WARMUP=1
  PEER_RUN=(env MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 OMP_WAIT_POLICY=passive
            OMP_NUM_THREADS=1 /usr/bin/python3 "$ROOT/scripts/bench_train_peer.py" --shard "$OUT/data/train.h5"
            --steps "$PEER_STEPS" --warmup "$PEER_WARMUP" --threads 1 --batch "$PER_RANK_BATCH" "${PEER_SIZE[@]}")
fi

# Each run is named: the driver ignores the name, `kmidi train` gets a run folder of its own.
run_args() {  # run_args NAME
  if [ "$GENERATOR" = 1 ]; then echo "run.name=$1"; fi
}

value_of() {  # value_of KEY FILE: the last "KEY <number>" line a run printed
  sed -n "s/^$1 \([0-9.]*\)\$/\1/p" "$2" | tail -n 1
}

peer_ms() {  # peer_ms NAME: the median step time the peer's run NAME printed (rank 0's, in JSON)
  local value
  value=$(sed -n 's/.*"median_step_ms": \([0-9.]*\).*/\1/p' "$OUT/$1.out" | tail -n 1)
  if [ -z "$value" ]; then
    echo "bench_ddp.sh: no step time from the peer's run $1:" >&2
    tail -n 20 "$OUT/$1.err" >&2 2>/dev/null || true
    exit 1
  fi
  echo "$value"
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

run_one() {  # run_one NAME CMD...: one process alone
  local name=$1
  shift
  OMP_NUM_THREADS=1 "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" || {
    tail -n 20 "$OUT/$name.err" >&2
    exit 1
  }
}

run_ranks() {  # run_ranks PORT NAME CMD...: 2 ranks with torchrun's variables, rank 0 hosting the store
  local port=$1 name=$2 pids=() failed=0 rank
  shift 2
  for rank in 0 1; do
    env OMP_NUM_THREADS=1 RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank LOCAL_WORLD_SIZE=2 \
      MASTER_ADDR=127.0.0.1 MASTER_PORT="$port" "$@" >"$OUT/$name.rank$rank.out" 2>"$OUT/$name.rank$rank.err" &
    pids+=($!)
  done
  for rank in 0 1; do
    if ! wait "${pids[$rank]}"; then
      echo "bench_ddp.sh: $name: rank $rank failed:" >&2
      tail -n 20 "$OUT/$name.rank$rank.err" >&2
      failed=1
    fi
  done
  [ "$failed" = 0 ] || exit 1
}

# Control: two independent 1-rank runs at once, nothing communicated. Their
# step time is what sharing the machine's cores, caches and memory costs by
# itself; the 2-rank run's excess over it is what data parallelism costs.
run_two() {  # run_two NAME CMD...: two independent processes at once; {i} in CMD becomes 0 or 1
  local name=$1 pids=() i
  shift
  for i in 0 1; do
    OMP_NUM_THREADS=1 "${@//\{i\}/$i}" >"$OUT/$name.$i.out" 2>"$OUT/$name.$i.err" &
    pids+=($!)
  done
  for i in 0 1; do
    wait "${pids[$i]}" || { tail -n 20 "$OUT/$name.$i.err" >&2; exit 1; }
  done
}

# A kmidi run and the peer's run of each kind, by round: ROUND names its files.
run_single() { run_one "single$1" "${SINGLE[@]}" $(run_args "single$1"); }
run_pair() { run_ranks "$PORT" "pair$1" "${PAIR[@]}" $(run_args "pair$1"); }
run_control() { run_two "control$1" "${SINGLE[@]}" $(run_args "control$1.{i}"); }
run_peer_single() { run_one "peer_single$1" "${PEER_RUN[@]}"; }
run_peer_pair() { run_ranks "$PEER_PORT" "peer_pair$1" "${PEER_RUN[@]}"; }
run_peer_control() { run_two "peer_control$1" "${PEER_RUN[@]}"; }

[ "$GENERATOR" = 1 ] && MODEL_NAME="the MIDI generator (kmidi train)" || MODEL_NAME="the driver's transformer"
[ "$DRIVER_SIZE" = 1 ] && MODEL_NAME="$MODEL_NAME at the driver's size"
[ "$PEER" = 1 ] && MODEL_NAME="$MODEL_NAME, and the Python peer with PyTorch's DDP"
echo "bench_ddp: $MODEL_NAME; $ROUNDS round(s) of: 1 rank x 1 thread; 2 ranks x 1 thread; control (two 1-rank runs at once);" \
     "per-rank batch $PER_RANK_BATCH, $STEPS steps each" >&2

report_round() {  # report_round LABEL ROWS ROUND
  awk -F'\t' -v r="$3" -v label="$1" '$1 == r {
    control = ($4 + $5) / 2
    printf "round %d%s: 1 rank %.1f ms, 2 ranks %.1f ms (ratio %.3f), control %.1f ms (sharing %.3f, data parallelism beyond it %.3f)",
           r, label, $2, $3, $3 / $2, control, control / $2, $3 / control
    if ($6 != "nan") printf ", wait after backward %s ms", $6
    printf "\n"
  }' "$2" >&2
}

summarise() {  # summarise PREFIX ROWS: medians over rounds, each line starting with PREFIX
  sort -n -k1 "$2" | awk -F'\t' -v p="$1" '
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
      printf "%srounds:  %d (medians over rounds; ratios taken within each round)\n", p, n
      printf "%s1 rank:  %10.2f ms/step\n%s2 ranks: %10.2f ms/step\n", p, median(one, n), p, median(two, n)
      printf "%sratio:   %10.3f (goal <= 1.100: %s)\n", p, r, r <= 1.1 ? "met" : "NOT met"
      printf "%scontrol: %10.2f ms/step (two 1-rank runs at once)\n", p, median(ctl, n)
      printf "%ssharing the machine alone: %.3f x; data parallelism beyond that: %.3f x\n", p, median(sharing, n), median(beyond, n)
      if (exposed[1] != "nan")
        printf "%swait after backward (2 ranks, rank 0: the last all-reduces and the slower rank): %.1f ms/step\n", p, median(exposed, n)
    }'
}

# Each kmidi run is followed by the peer's run of the same kind, so that both
# see the machine at nearly the same moment.
ORDERS=("single pair control" "pair control single" "control single pair")
ROWS=$OUT/rounds.tsv
PEER_ROWS=$OUT/peer_rounds.tsv
: >"$ROWS"
: >"$PEER_ROWS"
for ((round = 1; round <= ROUNDS; round++)); do
  for what in ${ORDERS[$(((round - 1) % 3))]}; do
    "run_$what" "$round"
    if [ "$PEER" = 1 ]; then "run_peer_$what" "$round"; fi
  done
  one=$(median_ms "single$round")
  if [ "$GENERATOR" = 1 ]; then two=$(median_ms "pair$round"); else two=$(median_ms "pair$round.rank0"); fi
  c0=$(median_ms "control$round.0")
  c1=$(median_ms "control$round.1")
  exposed=$(value_of median_finish_ms "$OUT/pair$round.rank0.out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$one" "$two" "$c0" "$c1" "${exposed:-nan}" >>"$ROWS"
  report_round "" "$ROWS" "$round"
  if [ "$PEER" = 1 ]; then
    printf '%s\t%s\t%s\t%s\t%s\tnan\n' "$round" "$(peer_ms "peer_single$round")" "$(peer_ms "peer_pair$round.rank0")" \
      "$(peer_ms "peer_control$round.0")" "$(peer_ms "peer_control$round.1")" >>"$PEER_ROWS"
    report_round " (python peer, PyTorch DDP)" "$PEER_ROWS" "$round"
  fi
done

summarise "" "$ROWS"
if [ "$PEER" = 1 ]; then
  echo "python peer (scripts/bench_train_peer.py, PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') DistributedDataParallel, Gloo):"
  summarise "peer " "$PEER_ROWS"
fi
