#!/usr/bin/env bash
# Accuracy of bf16 autocast against fp32 on a real run: the MIDI generator
# (configs/midi_generator.yaml's model) trained on POP909 for the same steps,
# same seed and same batches in both precisions, then validated on the whole
# validation split. Prints both validation perplexities and their relative
# difference (goal: within 2%), with each run's wall time.
#
#   scripts/bench_precision.sh [--steps N] [--corpus sample|full] [--threads N]
#   KMIDI_BUILD_DIR=build
#
# --corpus full prepares all of POP909 (configs/prepare_pop909.yaml; needs
# KMIDI_DATA_ROOT or ../shared/data); sample uses the repo's 40-song sample.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KMIDI_BUILD_DIR:-$ROOT/build}
STEPS=300 CORPUS=full THREADS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS=${2:?}; shift 2 ;;
    --corpus) CORPUS=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_precision.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$CORPUS" in
  sample) PREPARE=$ROOT/configs/prepare_pop909_sample.yaml ;;
  full) PREPARE=$ROOT/configs/prepare_pop909.yaml ;;
  *) echo "bench_precision.sh: --corpus must be sample or full, got '$CORPUS'" >&2; exit 2 ;;
esac
WORK=$(mktemp -d /tmp/kmidi-bench-precision.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "command: scripts/bench_precision.sh --steps $STEPS --corpus $CORPUS --threads $THREADS"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' + uncommitted changes')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load at start $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/kmidi" prepare --config "$PREPARE" "output.dir=$WORK/data" >"$WORK/prepare.log" 2>&1 \
  || { cat "$WORK/prepare.log" >&2; exit 1; }

for precision in fp32 bf16; do
  start=$(date +%s)
  OMP_NUM_THREADS=$THREADS "$BUILD/kmidi" train --config "$ROOT/configs/midi_generator.yaml" \
    "data.dir=$WORK/data" "run.output_dir=$WORK" "run.name=$precision" "run.threads=$THREADS" \
    "run.tensorboard=false" "train.precision=$precision" "train.max_steps=$STEPS" "train.log_every=25" \
    "train.eval_every=0" "train.eval_max_batches=0" "train.checkpoint_every=0" \
    "train.schedule.warmup_steps=$((STEPS / 10))" >"$WORK/$precision.json" 2>"$WORK/$precision.log" \
    || { tail -n 20 "$WORK/$precision.log" >&2; exit 1; }
  echo "$precision: $(( $(date +%s) - start )) s; $(grep -m1 -o 'precision [a-z0-9]* ([^)]*)' "$WORK/$precision.log")"
done
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"

/usr/bin/python3 - "$WORK" "$STEPS" <<'EOF'
import json, sys
work, steps = sys.argv[1], sys.argv[2]
def last(precision, split):
    rows = [json.loads(l) for l in open(f"{work}/{precision}/metrics.jsonl")]
    return [r for r in rows if r["split"] == split][-1]
v32, v16 = last("fp32", "validation"), last("bf16", "validation")
t32, t16 = last("fp32", "train"), last("bf16", "train")
print(f"\n| precision | train loss (last 25 steps) | validation loss | validation perplexity | accuracy | items |")
print("|---|---|---|---|---|---|")
for name, t, v in (("fp32", t32, v32), ("bf16", t16, v16)):
    print(f"| {name} | {t['loss']:.4f} | {v['loss']:.4f} | {v['perplexity']:.3f} | {v['accuracy']:.4f} | {int(v['items'])} |")
diff = (v16["perplexity"] - v32["perplexity"]) / v32["perplexity"]
print(f"\nvalidation perplexity after {steps} steps: bf16 differs from fp32 by {diff:+.2%} (goal: within 2%)")
EOF
