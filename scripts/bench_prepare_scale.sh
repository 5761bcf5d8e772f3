#!/usr/bin/env bash
# kmidi prepare at scale: files/s and peak RSS at several corpus sizes. The
# corpora are written from ../shared/data/pop909 (transposed and
# time-stretched copies, all different: scripts/make_scale_corpus.py) into a
# temporary folder, then prepared with the POP909 tokenizer (configs/
# prepare_pop909.yaml's settings, all cores, on_error skip).
#
#   scripts/bench_prepare_scale.sh [--files "1000 10000 100000"] [--workers N] [--keep]
#     --files LIST   corpus sizes to prepare (default: 1000 10000 100000)
#     --workers N    prepare's num_workers (default 0: all cores)
#     --buffer MB    output.max_buffer_mb (default: the config's, 256)
#     --keep         keep the temporary folder (its path is printed)
#   KMIDI_BUILD_DIR    build folder (default: build); kmidi is built there
#   KMIDI_SHARED_DATA  data folder (default: ../shared/data beside the repo)
#   TMPDIR             where the corpora go (needs ~16 KB per file, twice)
#
# Peak RSS comes from /usr/bin/time -v; files/s counts every corpus file
# (read, hashed, parsed, tokenized, written to a segment and to its shard).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KMIDI_BUILD_DIR:-$ROOT/build}
DATA=${KMIDI_SHARED_DATA:-$ROOT/../shared/data}
SIZES="1000 10000 100000"
WORKERS=0
BUFFER=
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --files) SIZES=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --buffer) BUFFER=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "bench_prepare_scale.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
SOURCE=$DATA/pop909/POP909
if [ ! -d "$SOURCE" ]; then echo "bench_prepare_scale.sh: missing $SOURCE" >&2; exit 2; fi
if [ ! -x /usr/bin/time ]; then echo "bench_prepare_scale.sh: needs /usr/bin/time (GNU time)" >&2; exit 2; fi

if command -v kbuild >/dev/null; then kbuild kmidi >/dev/null; else cmake --build "$BUILD" --target kmidi >/dev/null; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kmidi_prepare_scale.XXXXXX")
if [ "$KEEP" = 1 ]; then echo "# keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi

# The POP909 tokenizer and reader, without its corpus paths.
cat >"$WORK/prepare.yaml" <<YAML
corpus:
  root: corpus
  include: ["*/*.mid"]
  song_id_pattern: "^v[0-9]+/([0-9]+)\\\\.mid$"   # every copy of a song shares its split
split: {method: hash, names: [train, validation, test], ratios: [0.8, 0.1, 0.1]}
tokenizer:
  positions_per_quarter: 12
  pitch_min: 21
  pitch_max: 108
  drums: false
  velocity_bins: 32
  duration_max_quarters: 8
  tempos: true
  tempo_bins: 32
  time_signatures: false
  program_mode: none
reader: {strict: true}
on_error: skip
on_duplicate: drop
num_workers: $WORKERS
output: {dir: out}
YAML

echo "# kmidi prepare at scale: corpora from $SOURCE (transposed, time-stretched copies)"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# kmidi $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), num_workers $WORKERS${BUFFER:+, max_buffer_mb $BUFFER}"
printf "%9s %10s %9s %9s %10s %9s %12s\n" files make_s prepare_s files/s peak_MB items left_out
FIRST_RSS=
for n in $SIZES; do
  corpus=$WORK/corpus_$n
  start=$(date +%s.%N)
  python3 "$ROOT/scripts/make_scale_corpus.py" --source "$SOURCE" --out "$corpus" --files "$n"
  made=$(echo "$(date +%s.%N) - $start" | bc)
  sync
  args=(prepare --config "$WORK/prepare.yaml" "corpus.root=$corpus" "output.dir=$WORK/out_$n")
  if [ -n "$BUFFER" ]; then args+=("output.max_buffer_mb=$BUFFER"); fi
  if ! /usr/bin/time -v -o "$WORK/time_$n.txt" "$BUILD/kmidi" "${args[@]}" >"$WORK/prepare_$n.log" 2>&1; then
    echo "bench_prepare_scale.sh: prepare of $n files failed; log:" >&2
    tail -20 "$WORK/prepare_$n.log" >&2
    exit 1
  fi
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$WORK/time_$n.txt")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time_$n.txt")
  items=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sum(s['items'] for s in r['splits']))" "$WORK/out_$n/prepare_report.json")
  left=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sum(r['left_out_counts'].values()))" "$WORK/out_$n/prepare_report.json")
  printf "%9d %10.1f %9.2f %9.0f %10.1f %9d %12d\n" "$n" "$made" "$wall" "$(echo "$n / $wall" | bc -l)" \
    "$(echo "$rss_kb / 1024" | bc -l)" "$items" "$left"
  if [ -z "$FIRST_RSS" ]; then FIRST_RSS=$rss_kb; fi
  LAST_RSS=$rss_kb
  rm -rf "$corpus" "$WORK/out_$n"
done
printf "# peak RSS, largest / smallest corpus: %.2fx\n" "$(echo "$LAST_RSS / $FIRST_RSS" | bc -l)"
