#!/usr/bin/env bash
# Peak resident memory of a short MIDI generator training run against the
# size of its corpus (issue 22, point 4): the same job on a SMALL-file and a
# LARGE-file corpus, with streamed shards (data.preload: false, the default)
# and, for contrast, with every token preloaded (data.preload: true, the old
# default). Target: streamed RSS(LARGE) <= 1.2 x streamed RSS(SMALL).
#
#   scripts/bench_train_rss.sh [--small 1000] [--large 100000] [--steps 20]
#                              [--work DIR] [--runs streamed,preloaded]
#   KMIDI_BUILD_DIR=build  KMIDI_DATA_ROOT=../shared/data  THREADS=2
#
# Corpora: the 909 POP909 songs (pop909/POP909/NNN/NNN.mid) hard-linked
# ceil(N / 909) times as <work>/files_N/cKKK_NNN/NNN.mid (the first N kept),
# then `kmidi prepare` with on_duplicate: keep (the copies are byte-identical)
# and the POP909 tokenizer. Prepared corpora stay under --work (default
# /tmp/kmidi-bench-rss) and are reused: preparing 100k files takes long.
# Job: configs/midi_generator.yaml (4 layers, d_model 256, 256 tokens, batch
# 8), STEPS steps, evaluation limited to 2 batches, no checkpoints; peak RSS
# from /usr/bin/time -v ("Maximum resident set size").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KMIDI_BUILD_DIR:-$ROOT/build}
DATA_ROOT=${KMIDI_DATA_ROOT:-$ROOT/../shared/data}
THREADS=${THREADS:-2}
SMALL=1000 LARGE=100000 STEPS=20 WORK=/tmp/kmidi-bench-rss RUNS=streamed,preloaded
usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --small) SMALL=${2:?}; shift 2 ;;
    --large) LARGE=${2:?}; shift 2 ;;
    --steps) STEPS=${2:?}; shift 2 ;;
    --work) WORK=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    -h|--help) usage ;;
    *) echo "bench_train_rss.sh: unknown argument $1" >&2; usage ;;
  esac
done
for n in "$SMALL" "$LARGE" "$STEPS"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "bench_train_rss.sh: sizes and steps must be positive integers, got '$n'" >&2; exit 2; }
done
IFS=, read -r -a RUN_LIST <<<"$RUNS"
for r in "${RUN_LIST[@]}"; do
  case "$r" in streamed|preloaded) ;; *) echo "bench_train_rss.sh: unknown run '$r' in --runs" >&2; exit 2 ;; esac
done
SONGS="$DATA_ROOT/pop909/POP909"
[ -d "$SONGS" ] || { echo "bench_train_rss.sh: $SONGS not found (set KMIDI_DATA_ROOT)" >&2; exit 2; }
[ -x "$BUILD/kmidi" ] || { echo "bench_train_rss.sh: $BUILD/kmidi not built (kbuild kmidi)" >&2; exit 2; }
mkdir -p "$WORK"

make_corpus() {  # make_corpus N: sets PREPARED to a prepared corpus of N files
  local n=$1 files="$WORK/files_$1"
  PREPARED="$WORK/prepared_$n"
  if [ -f "$PREPARED/train.h5" ] && [ -f "$PREPARED/tokenizer.json" ]; then return; fi
  rm -rf "$files" "$files.tmp"
  # One process for the N hard links (a shell loop forks twice per file).
  python3 - "$SONGS" "$files.tmp" "$n" <<'PY'
import os, sys
songs, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ids = sorted(d for d in os.listdir(songs) if os.path.isfile(os.path.join(songs, d, d + ".mid")))
for k in range(n):
    copy, song = divmod(k, len(ids))
    folder = os.path.join(out, "c%03d_%s" % (copy, ids[song]))
    os.makedirs(folder)
    os.link(os.path.join(songs, ids[song], ids[song] + ".mid"), os.path.join(folder, ids[song] + ".mid"))
PY
  mv "$files.tmp" "$files"
  # The POP909 preparation (tokenizer, split) on the copies, keeping duplicates.
  sed -e "s|^data_root:.*|data_root: $files|" -e "s|^  root: .*|  root: .|" \
      -e "s|^on_duplicate: .*|on_duplicate: keep|" -e "s|^num_workers: .*|num_workers: $THREADS|" \
      -e "s|^  dir: .*|  dir: $PREPARED|" -e 's|^  song_id_pattern: .*|  song_id_pattern: "^(c[0-9]+_[0-9]+)/"|' \
      "$ROOT/configs/prepare_pop909.yaml" >"$WORK/prepare_$n.yaml"
  grep -q "^on_duplicate: keep" "$WORK/prepare_$n.yaml" || echo "on_duplicate: keep" >>"$WORK/prepare_$n.yaml"
  grep -q "^num_workers:" "$WORK/prepare_$n.yaml" || echo "num_workers: $THREADS" >>"$WORK/prepare_$n.yaml"
  echo "preparing $n files into $PREPARED ..." >&2
  local start=$SECONDS
  "$BUILD/kmidi" prepare --config "$WORK/prepare_$n.yaml" >"$WORK/prepare_$n.log" 2>&1 ||
    { echo "bench_train_rss.sh: kmidi prepare failed:" >&2; tail -n 20 "$WORK/prepare_$n.log" >&2; exit 1; }
  echo "prepared $n files in $((SECONDS - start)) s" >&2
}

train_rss() {  # train_rss DIR PRELOAD NAME: prints the peak RSS in MB
  local dir=$1 preload=$2 name=$3
  if ! OMP_NUM_THREADS=$THREADS /usr/bin/time -v -o "$WORK/$name.time" "$BUILD/kmidi" train \
      --config "$ROOT/configs/midi_generator.yaml" "data.dir=$dir" "data.preload=$preload" "run.output_dir=$WORK/runs" \
      "run.name=$name" "run.threads=$THREADS" "run.tensorboard=false" "train.max_steps=$STEPS" "train.log_every=5" \
      "train.eval_every=0" "train.eval_max_batches=2" "train.checkpoint_every=0" "train.schedule.warmup_steps=1" \
      >/dev/null 2>"$WORK/$name.log"; then
    echo "bench_train_rss.sh: $name failed:" >&2; tail -n 20 "$WORK/$name.log" >&2; exit 1
  fi
  awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$WORK/$name.time"
}

make_corpus "$SMALL"; SMALL_DIR=$PREPARED
make_corpus "$LARGE"; LARGE_DIR=$PREPARED
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); load $(cut -d' ' -f1-3 /proc/loadavg)"
for d in "$SMALL_DIR" "$LARGE_DIR"; do
  echo "corpus $d: train.h5 $(du -m "$d/train.h5" | cut -f1) MB on disk"
done
printf '%-10s %14s %14s %8s\n' run "RSS small MB" "RSS large MB" ratio
for run in "${RUN_LIST[@]}"; do
  preload=false
  [ "$run" = preloaded ] && preload=true
  small=$(train_rss "$SMALL_DIR" "$preload" "$run-$SMALL")
  large=$(train_rss "$LARGE_DIR" "$preload" "$run-$LARGE")
  printf '%-10s %14s %14s %8.3f\n' "$run" "$small" "$large" "$(awk -v a="$small" -v b="$large" 'BEGIN {print b / a}')"
done
echo "load at end $(cut -d' ' -f1-3 /proc/loadavg)"
