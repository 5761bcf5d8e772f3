#!/usr/bin/env bash
# The emotion-conditioned MIDI generator, trained end to end (issue 18):
#   1. prepares POP909 (all 909 songs) and EMOPIA into OUT_DIR/data/;
#   2. pre-trains the generator on POP909, no labels
#      (configs/emotion_generator_pretrain.yaml)                  -> OUT_DIR/pretrain/
#   3. fine-tunes it on EMOPIA's train split, each clip conditioned on its
#      quadrant, with condition dropout (configs/emotion_generator_finetune.yaml,
#      train.init_from = stage 2's best.ckpt)                     -> OUT_DIR/finetune/
#   4. trains the emotion model that judges generated pieces
#      (configs/emotion.yaml)                                      -> OUT_DIR/judge/
# and leaves OUT_DIR/checkpoints/best.ckpt (the fine-tuned generator, with
# its tokenizer.json beside it) and OUT_DIR/judge/best.ckpt.
#
#   scripts/train_emotion_generator.sh OUT_DIR [key=value ...]
#
# key=value overrides apply to both generator stages (which must share one
# architecture), e.g. on a GPU: model.d_model=512 model.n_layers=8
# train.batch_size=64; each stage's own length is in its config.
# Running the same command again continues where it stopped: prepared data
# is reused and each stage resumes from its newest checkpoint (a finished
# stage ends at once). About 30 minutes of training on the 2-core CPU in
# bf16, train.precision auto's choice there (pre-training ~8, fine-tuning
# ~20, judge <1); the last line reports the training time.
#
# Environment: KMIDI_DATA_ROOT (the folder holding pop909/ and emopia/;
# default ../shared/data beside the checkout), KMIDI_BIN (default
# build/kmidi), KMIDI_RECIPE_QUICK=1 (a smoke run of about a minute for
# tests: the repo's 40-song POP909 sample, a tiny model, a few steps).
# Exit codes: 2 bad usage; otherwise that of the kmidi command that failed.
set -euo pipefail

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }
die_usage() { echo "train_emotion_generator.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; -*) die_usage "unknown option $1 (see --help)" ;; esac
OUT=$(realpath -m -- "$1")
shift
for a in "$@"; do
  [[ "$a" == *=* ]] || die_usage "overrides are key=value, got '$a'"
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KMIDI=${KMIDI_BIN:-$ROOT/build/kmidi}
[ -x "$KMIDI" ] || die_usage "$KMIDI is not an executable (build it, or set KMIDI_BIN)"
CONFIGS=$ROOT/configs

POP909_PREPARE=$CONFIGS/prepare_pop909.yaml
GEN=() PRE=() FINE=() JUDGE=()
if [ "${KMIDI_RECIPE_QUICK:-0}" = 1 ]; then
  POP909_PREPARE=$CONFIGS/prepare_pop909_sample.yaml
  GEN=(model.d_model=32 model.n_layers=2 model.n_heads=2 model.d_ff=64 model.condition_tokens=2
       data.max_length=32 train.eval_max_batches=2 train.log_every=2)
  PRE=(train.max_steps=8 train.schedule.warmup_steps=2 train.eval_every=4 train.checkpoint_every=4)
  FINE=(train.max_steps=6 train.schedule.warmup_steps=1 train.eval_every=3 train.checkpoint_every=3)
  JUDGE=(train.epochs=0 train.max_steps=6 train.schedule.warmup_steps=1 train.eval_every=3 train.checkpoint_every=3
         train.log_every=2)
fi

mkdir -p "$OUT/data"
START=$(date +%s)
stage() { echo "train_emotion_generator.sh: $* ($(( $(date +%s) - START )) s so far)" >&2; }

# Prepared folders are complete once prepare_report.json, written last, exists.
prepare() {
  local config=$1 dir=$2
  if [ -f "$dir/prepare_report.json" ]; then
    stage "reusing $dir"
    return
  fi
  stage "preparing $dir from $(basename "$config")"
  "$KMIDI" prepare --config "$config" "output.dir=$dir"
}

# Copies a finished stage's file to where the recipe promises it, atomically.
publish() {
  local src=$1 dst=$2
  [ -f "$src" ] || { echo "train_emotion_generator.sh: $src is missing (did the stage validate?)" >&2; exit 3; }
  mkdir -p "$(dirname "$dst")"
  cp -f -- "$src" "$dst.tmp.$$"
  mv -f -- "$dst.tmp.$$" "$dst"
}

prepare "$POP909_PREPARE" "$OUT/data/pop909"
prepare "$CONFIGS/prepare_emopia.yaml" "$OUT/data/emopia"

TRAIN_START=$(date +%s)
stage "stage 2: pre-training on POP909 -> $OUT/pretrain"
"$KMIDI" train --config "$CONFIGS/emotion_generator_pretrain.yaml" \
  "data.dir=$OUT/data/pop909" "run.output_dir=$OUT" run.name=pretrain "${GEN[@]}" "${PRE[@]}" "$@"

stage "stage 3: fine-tuning on EMOPIA with emotion labels -> $OUT/finetune"
"$KMIDI" train --config "$CONFIGS/emotion_generator_finetune.yaml" \
  "data.dir=$OUT/data/emopia" "run.output_dir=$OUT" run.name=finetune \
  "train.init_from=$OUT/pretrain/checkpoints/best.ckpt" "${GEN[@]}" "${FINE[@]}" "$@"

stage "stage 4: the judge (emotion model) -> $OUT/judge"
"$KMIDI" train --config "$CONFIGS/emotion.yaml" \
  "data.prepared=$OUT/data/emopia" "run.output_dir=$OUT" run.name=judge "${JUDGE[@]}"

TRAIN_SECONDS=$(( $(date +%s) - TRAIN_START ))
publish "$OUT/finetune/checkpoints/best.ckpt" "$OUT/checkpoints/best.ckpt"
publish "$OUT/finetune/checkpoints/tokenizer.json" "$OUT/checkpoints/tokenizer.json"
publish "$OUT/judge/checkpoints/best.ckpt" "$OUT/judge/best.ckpt"
stage "done: generator $OUT/checkpoints/best.ckpt, judge $OUT/judge/best.ckpt; this invocation trained for $TRAIN_SECONDS s"
