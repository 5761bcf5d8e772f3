#!/usr/bin/env bash
# MIDI parsing throughput: kmidi's reader (1 and 2 threads) side by side with
# mido (one core) on the same files, all MIDI files of ../shared/data/pop909
# and groove-midi. Each reader parses, pairs notes and times them through the
# tempo map; the table shows the median of several runs (page cache warm).
#
#   scripts/bench_midi.sh [--repeat N] [--mido-repeat M] [--limit K]
#     --repeat N       timed kmidi runs per thread count (default 5)
#     --mido-repeat M  timed mido runs (default 3)
#     --limit K        only the first K files of each corpus (a smoke run)
#   KMIDI_BUILD_DIR    build folder (default: build); midi_bench is built there
#   KMIDI_SHARED_DATA  data folder (default: ../shared/data beside the repo)
#
# Run it on a quiet machine: other processes on the cores skew every figure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KMIDI_BUILD_DIR:-$ROOT/build}
DATA=${KMIDI_SHARED_DATA:-$ROOT/../shared/data}
PYTHON=${KMIDI_PYTHON:-/usr/bin/python3}
REPEAT=5
MIDO_REPEAT=3
LIMIT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) REPEAT=$2; shift 2 ;;
    --mido-repeat) MIDO_REPEAT=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench_midi.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
for corpus in pop909 groove-midi; do
  if [ ! -d "$DATA/$corpus" ]; then echo "bench_midi.sh: missing $DATA/$corpus" >&2; exit 2; fi
done

cmake --build "$BUILD" --target midi_bench >/dev/null

LIST=$(mktemp)
trap 'rm -f "$LIST"' EXIT
for corpus in pop909 groove-midi; do
  find "$DATA/$corpus" -type f \( -iname '*.mid' -o -iname '*.midi' -o -iname '*.kar' \) | LC_ALL=C sort |
    awk -v k="$LIMIT" 'k == 0 || NR <= k' 
done >"$LIST"

echo "# MIDI parse benchmark: $(wc -l <"$LIST") files of pop909 + groove-midi"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%Y-%m-%dT%H:%MZ)"
echo "# kmidi $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), mido $("$PYTHON" -c 'import mido; print(mido.__version__)')"

RESULTS=$(mktemp)
trap 'rm -f "$LIST" "$RESULTS"' EXIT
# ---- TOKENIZATION HOOK -------------------------------------------------------
# When midi_bench gains `--tokenize CONFIG` (the tokenizer part of issue 3),
# add a kmidi row per thread count with it here, so that the table also shows
# parse + tokenize.
# ------------------------------------------------------------------------------
for threads in 1 2; do
  "$BUILD/tests/datasets/midi/midi_bench" --list "$LIST" --threads "$threads" --repeat "$REPEAT" | tee -a "$RESULTS"
done
"$PYTHON" "$ROOT/scripts/bench_midi_mido.py" --list "$LIST" --repeat "$MIDO_REPEAT" | tee -a "$RESULTS"

echo
awk '
  { name = $1; for (i = 2; i <= NF; ++i) { split($i, kv, "="); v[NR, kv[1]] = kv[2] } n[NR] = name }
  n[NR] == "mido" { mido_fps = v[NR, "files_per_s"] }
  END {
    printf "| reader | threads | files | notes | median s | files/s | notes/s | files/s vs mido |\n"
    printf "|---|---|---|---|---|---|---|---|\n"
    for (r = 1; r <= NR; ++r) {
      ratio = mido_fps > 0 ? sprintf("%.1fx", v[r, "files_per_s"] / mido_fps) : "?"
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", n[r], v[r, "threads"], v[r, "files"], v[r, "notes"],
             v[r, "median_s"], v[r, "files_per_s"], v[r, "notes_per_s"], ratio
    }
  }' "$RESULTS"
