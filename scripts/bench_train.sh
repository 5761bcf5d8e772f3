#!/usr/bin/env bash
# Training throughput of the MIDI generator in kmidi against the same model in
# Python PyTorch (scripts/bench_train_peer.py, Debian's python3-torch = the
# same LibTorch), interleaved round by round on the repo's POP909 sample, all
# on THREADS threads.
#
#   scripts/bench_train.sh [--size config|seed|both] [--rounds N] [--steps N]
#                          [--runs kmidi,kmidi-fp32,peer-bf16,peer-fp32]
#   KMIDI_BUILD_DIR=build THREADS=2
#
# Sizes: config = configs/midi_generator.yaml (4 layers, d_model 256, 4 heads,
# d_ff 1024, 256 tokens, batch 8); seed = the seed generator (8 layers,
# d_model 384, 6 heads, d_ff 1536, 512 tokens, batch 4). Both: dropout 0.1,
# tied output, label-smoothed cross-entropy, clipping at 1.0, AdamW.
# Runs: kmidi = `kmidi train` with no user settings (no tuning variables, no
# train.precision: what auto picks); kmidi-fp32 = the same with
# train.precision=fp32; peer-bf16 / peer-fp32 = the Python peer with and
# without torch.autocast("cpu", bfloat16), tuned (glibc malloc thresholds,
# passive OpenMP). Each reports tokens/s (median over the steps after 5
# warm-up steps), peak RSS, and model FLOP utilisation against the fp32 and
# the bf16 GEMM peak that this script measures before and after (torch.matmul, 2048^3).
# The positional form `bench_train.sh ROUNDS STEPS` still works (config size).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KMIDI_BUILD_DIR:-$ROOT/build}
THREADS=${THREADS:-2}
SIZES=config ROUNDS=3 STEPS=20 RUNS=kmidi,kmidi-fp32,peer-bf16
usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZES=${2:?--size needs config, seed or both}; shift 2 ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --steps) STEPS=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "bench_train.sh: unknown option $1" >&2; usage ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -ge 1 ] && ROUNDS=${positional[0]}
[ ${#positional[@]} -ge 2 ] && STEPS=${positional[1]}
[ "$SIZES" = both ] && SIZES="config seed"
for s in $SIZES; do
  case "$s" in config|seed) ;; *) echo "bench_train.sh: --size must be config, seed or both, got '$s'" >&2; exit 2 ;; esac
done
IFS=, read -r -a RUN_LIST <<<"$RUNS"
for r in "${RUN_LIST[@]}"; do
  case "$r" in kmidi|kmidi-fp32|peer-bf16|peer-fp32) ;; *) echo "bench_train.sh: unknown run '$r' in --runs" >&2; exit 2 ;; esac
done
PY=/usr/bin/python3
WARMUP=5
WORK=$(mktemp -d /tmp/kmidi-bench-train.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

"$BUILD/kmidi" prepare --config "$ROOT/configs/prepare_pop909_sample.yaml" "output.dir=$WORK/data" >/dev/null 2>&1

kmidi_size() {  # kmidi overrides of a size
  case "$1" in
    config) ;;
    seed) echo model.d_model=384 model.n_layers=8 model.n_heads=6 model.d_ff=1536 data.max_length=512 train.batch_size=4 ;;
  esac
}
peer_size() {  # peer options of a size
  case "$1" in
    config) echo --d-model 256 --layers 4 --heads 4 --d-ff 1024 --length 256 --batch 8 ;;
    seed) echo --d-model 384 --layers 8 --heads 6 --d-ff 1536 --length 512 --batch 4 ;;
  esac
}
flops_per_token() {  # 6 x weights touched per token (tied output counts) + attention, forward and backward
  local d layers ff t
  case "$1" in config) d=256 layers=4 ff=1024 t=256 ;; seed) d=384 layers=8 ff=1536 t=512 ;; esac
  $PY -c "
d, layers, ff, t, vocab, prefix = $d, $layers, $ff, $t, 301, 4
weights = layers * (4 * d * d + 2 * d * ff) + d * vocab
attention = layers * 2 * 2 * d * (t / 2 + prefix)  # scores and values over half the context on average
print(6 * weights + 3 * attention)"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "bf16 flags: $(grep -m1 -o -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | xargs || true);" \
     "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}; torch $($PY -c 'import torch; print(torch.__version__)')"
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg) (other processes share this machine when it is above ~0.5)"
gemm_peaks() {  # prints "FP32 BF16" GFLOP/s: the best of 10 timed 2048^3 products each
  $PY - "$THREADS" <<'EOF'
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
n = 2048
def peak(dtype):
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3): a @ b
    best = 0
    for _ in range(10):
        t = time.perf_counter(); a @ b; best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best / 1e9
print(peak(torch.float32), peak(torch.bfloat16))
EOF
}
# Measured before and after the runs; the higher of the two counts (a busy
# machine only ever lowers it).
read -r PEAK_FP32 PEAK_BF16 < <(gemm_peaks)
printf 'GEMM peak at start (%d^3 torch.matmul, %d threads): fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n' 2048 "$THREADS" "$PEAK_FP32" "$PEAK_BF16"
echo "kmidi's precision with no settings: $("$BUILD/kmidi" train --config "$ROOT/configs/midi_generator.yaml" --print-config | grep '^# train.precision')"

run_one() {  # run_one SIZE RUN ROUND: sets RATE (tokens/s) and RSS_MB (peak resident set)
  local size=$1 run=$2 name="$1-$2-$3"
  local rss="$WORK/$name.rss" log="$WORK/$name.log" out="$WORK/$name.out"
  case "$run" in
    kmidi|kmidi-fp32)
      local extra=()
      [ "$run" = kmidi-fp32 ] && extra=(train.precision=fp32)
      # shellcheck disable=SC2046
      if ! OMP_NUM_THREADS=$THREADS /usr/bin/time -f %M -o "$rss" "$BUILD/kmidi" train \
          --config "$ROOT/configs/midi_generator.yaml" "data.dir=$WORK/data" "run.output_dir=$WORK" "run.name=$name" \
          "run.threads=$THREADS" "run.tensorboard=false" "train.max_steps=$((STEPS + WARMUP))" "train.log_every=1" \
          "train.eval_every=0" "train.eval_max_batches=1" "train.checkpoint_every=0" "train.schedule.warmup_steps=1" \
          $(kmidi_size "$size") "${extra[@]}" >/dev/null 2>"$log"; then
        echo "bench_train.sh: $name failed:" >&2; tail -n 20 "$log" >&2; exit 1
      fi
      RATE=$($PY -c "
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '\"train\"' in l]
print(statistics.median(r['throughput'] for r in rows if r['step'] > $WARMUP))" "$WORK/$name/metrics.jsonl") ;;
    peer-bf16|peer-fp32)
      local autocast=none
      [ "$run" = peer-bf16 ] && autocast=bf16
      # shellcheck disable=SC2046
      if ! MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 OMP_WAIT_POLICY=passive \
          /usr/bin/time -f %M -o "$rss" $PY "$ROOT/scripts/bench_train_peer.py" --shard "$WORK/data/train.h5" \
          --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --autocast "$autocast" $(peer_size "$size") \
          >"$out" 2>"$log"; then
        echo "bench_train.sh: $name failed:" >&2; tail -n 20 "$log" >&2; exit 1
      fi
      RATE=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['tokens_per_s'])" "$out") ;;
  esac
  RSS_MB=$(( $(tail -n 1 "$rss") / 1024 ))
}

RESULTS="$WORK/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    line="round $round, $size:"
    for run in "${RUN_LIST[@]}"; do
      run_one "$size" "$run" "$round"
      printf '%s\t%s\t%s\t%s\t%s\n' "$size" "$run" "$round" "$RATE" "$RSS_MB" >>"$RESULTS"
      line+=$(printf ' %s %.0f tokens/s (%s MB);' "$run" "$RATE" "$RSS_MB")
    done
    echo "$line"
  done
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
read -r END_FP32 END_BF16 < <(gemm_peaks)
printf 'GEMM peak at end: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n' "$END_FP32" "$END_BF16"
PEAK_FP32=$($PY -c "print(max($PEAK_FP32, $END_FP32))") PEAK_BF16=$($PY -c "print(max($PEAK_BF16, $END_BF16))")
printf 'GEMM peak used for MFU: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s\n' "$PEAK_FP32" "$PEAK_BF16"

for size in $SIZES; do
  $PY - "$RESULTS" "$size" "$PEAK_FP32" "$PEAK_BF16" "$(flops_per_token "$size")" <<'EOF'
import collections, statistics, sys
path, size, peak32, peak16, flops = sys.argv[1], sys.argv[2], float(sys.argv[3]) * 1e9, float(sys.argv[4]) * 1e9, float(sys.argv[5])
rates, rss = collections.defaultdict(list), collections.defaultdict(list)
for line in open(path):
    s, run, _, rate, mb = line.split("\t")
    if s == size:
        rates[run].append(float(rate)); rss[run].append(int(mb))
print(f"\n{size} size ({flops / 1e6:.1f} MFLOP per trained token), medians of {len(next(iter(rates.values())))} rounds:")
print("| run | tokens/s | rounds | peak RSS MB | MFU vs fp32 peak | MFU vs bf16 peak |")
print("|---|---|---|---|---|---|")
med = {}
for run, values in rates.items():
    med[run] = m = statistics.median(values)
    print(f"| {run} | {m:,.0f} | {' / '.join(f'{v:,.0f}' for v in values)} | {max(rss[run])} | "
          f"{m * flops / peak32:.1%} | {m * flops / peak16:.1%} |")
for a, b in (("kmidi", "peer-bf16"), ("kmidi", "peer-fp32"), ("kmidi", "kmidi-fp32"), ("peer-bf16", "peer-fp32")):
    if a in med and b in med:
        per_round = [x / y for x, y in zip(rates[a], rates[b])]
        print(f"ratio {a} / {b}: {med[a] / med[b]:.2f} (per round {' / '.join(f'{r:.2f}' for r in per_round)})")
EOF
done
