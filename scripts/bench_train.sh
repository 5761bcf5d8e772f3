#!/usr/bin/env bash
# Training throughput of the MIDI generator (configs/midi_generator.yaml's
# architecture and batch) in kmidi against the same model in Python PyTorch
# (scripts/bench_train_peer.py, Debian's python3-torch = the same LibTorch),
# interleaved round by round on the repo's POP909 sample, both on THREADS
# threads. kmidi runs with no tuning variables; the peer gets the tuned glibc
# malloc and OMP settings. Also measures the machine's fp32 GEMM peak with
# torch.matmul to report model FLOP utilisation (MFU).
#
#   scripts/bench_train.sh [ROUNDS=3] [STEPS=30]
#   KMIDI_BUILD_DIR=build THREADS=2
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KMIDI_BUILD_DIR:-$ROOT/build}
ROUNDS=${1:-3}
STEPS=${2:-30}
THREADS=${THREADS:-2}
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/kmidi-bench-train.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

"$BUILD/kmidi" prepare --config "$ROOT/configs/prepare_pop909_sample.yaml" "output.dir=$WORK/data" >/dev/null 2>&1

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
peak=$($PY - "$THREADS" <<'EOF'
import sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
for _ in range(3): a @ b
best = 0
for _ in range(10):
    t = time.perf_counter(); a @ b; dt = time.perf_counter() - t
    best = max(best, 2 * 1024**3 / dt)
print(best / 1e9)
EOF
)
echo "fp32 GEMM peak (1024^3 matmul, $THREADS threads): $(printf %.1f "$peak") GFLOP/s"

kmidi_rates=() ; peer_rates=()
for round in $(seq 1 "$ROUNDS"); do
  run="$WORK/run$round"
  OMP_NUM_THREADS=$THREADS "$BUILD/kmidi" train --config "$ROOT/configs/midi_generator.yaml" \
    "data.dir=$WORK/data" "run.output_dir=$WORK" "run.name=run$round" "run.threads=$THREADS" \
    "run.tensorboard=false" "train.max_steps=$((STEPS + 5))" "train.log_every=1" "train.eval_every=0" \
    "train.eval_max_batches=1" "train.checkpoint_every=0" "train.schedule.warmup_steps=1" >/dev/null 2>"$WORK/kmidi$round.log"
  # Median over the steps after the first 5 (warm-up), as the peer does.
  k=$($PY -c "
import json,statistics,sys
rows=[json.loads(l) for l in open(sys.argv[1]) if '\"train\"' in l]
print(statistics.median(r['throughput'] for r in rows if r['step']>5))" "$run/metrics.jsonl")
  p=$(MALLOC_MMAP_THRESHOLD_=17179869184 MALLOC_TRIM_THRESHOLD_=17179869184 OMP_WAIT_POLICY=passive \
      $PY "$ROOT/scripts/bench_train_peer.py" --shard "$WORK/data/train.h5" --steps "$STEPS" --threads "$THREADS" \
      | $PY -c "import json,sys; print(json.load(sys.stdin)['tokens_per_s'])")
  kmidi_rates+=("$k"); peer_rates+=("$p")
  printf 'round %d: kmidi %.0f tokens/s, python peer %.0f tokens/s, ratio %.2f\n' "$round" "$k" "$p" "$(echo "$k / $p" | bc -l)"
done

$PY - "$peak" "${kmidi_rates[*]}" "${peer_rates[*]}" <<'EOF'
import statistics, sys
peak = float(sys.argv[1]) * 1e9
k = statistics.median(map(float, sys.argv[2].split()))
p = statistics.median(map(float, sys.argv[3].split()))
# FLOPs per trained token: 6 x weights touched per token (embedding tied, so the
# output projection counts) + attention scores and values, forward and backward.
d, layers, ff, vocab, t, prefix = 256, 4, 1024, 301, 256, 4
weights = layers * (4 * d * d + 2 * d * ff) + d * vocab
attention = layers * 2 * 2 * d * (t / 2 + prefix)
flops = 6 * weights + 3 * attention
print(f"median: kmidi {k:.0f} tokens/s, python peer {p:.0f} tokens/s, ratio {k / p:.2f}")
print(f"MFU: kmidi {k * flops / peak:.1%}, peer {p * flops / peak:.1%} ({flops / 1e6:.1f} MFLOP per token)")
EOF
