#!/usr/bin/env bash
# Fuzzes the MIDI reader and writer with libFuzzer under ASan and UBSan.
# Builds the target in its own build folder (clang, -DKMIDI_FUZZ=ON), seeds
# the corpus with every MIDI file of the shared data, runs for the given time
# on one core and prints what BENCHMARKS.md records.
#
#   scripts/fuzz_midi.sh [SECONDS] [extra libFuzzer flags...]   (default 600 s)
#   KMIDI_FUZZ_BUILD_DIR=...   build folder (default: build-fuzz in the repo)
#   KMIDI_SHARED_DATA=...      data folder (default: ../shared/data beside the repo)
#
# New interesting inputs accumulate in $BUILD/fuzz/corpus (kept between runs);
# a crashing input lands in $BUILD/fuzz/artifacts: fix the bug, then copy the
# input into tests/fuzz/regressions/ so that the ctest smoke run replays it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${1:-600}
shift || true
BUILD=${KMIDI_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
DATA=${KMIDI_SHARED_DATA:-$ROOT/../shared/data}
if [ ! -d "$DATA" ]; then
  echo "fuzz_midi.sh: no data folder at $DATA (set KMIDI_SHARED_DATA)" >&2
  exit 2
fi
DATA=$(cd "$DATA" && pwd)

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKMIDI_FUZZ=ON -DKMIDI_SHARED_DATA="$DATA" >/dev/null
cmake --build "$BUILD" --target midi_reader_fuzz

WORK=$BUILD/fuzz
mkdir -p "$WORK/corpus" "$WORK/artifacts"
# Seeds: every MIDI file once, named by content so that copies collapse.
# Built once per build folder (delete $WORK/seeds to rebuild).
if [ ! -f "$WORK/seeds/.complete" ]; then
  rm -rf "$WORK/seeds"
  mkdir -p "$WORK/seeds"
  find "$DATA" -type f \( -iname '*.mid' -o -iname '*.midi' -o -iname '*.kar' \) -print0 | xargs -0 sha1sum |
    while read -r hash path; do
      [ -e "$WORK/seeds/$hash" ] || cp "$path" "$WORK/seeds/$hash"
    done
  touch "$WORK/seeds/.complete"
fi

LOG=$WORK/fuzz-$(date +%Y%m%d-%H%M%S).log
echo "fuzz_midi.sh: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "fuzz_midi.sh: $(ls "$WORK/seeds" | wc -l) seed files, $(ls "$WORK/corpus" | wc -l) corpus files before; ${DURATION} s; log $LOG"
# A small ASan quarantine: the default 256 MiB one makes every execution
# fault in fresh pages and halves the speed; use-after-free is still caught
# within the 4 MiB window. An ASAN_OPTIONS from the caller wins.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=4}
set +e
# Inputs up to 8 KiB: the median file has 2.4 KiB; larger seeds are cut,
# which exercises truncation too, and small inputs keep executions fast.
# Override with -max_len=N.
"$BUILD/tests/fuzz/midi_reader_fuzz" -max_total_time="$DURATION" -print_final_stats=1 -max_len=8192 \
  -dict="$ROOT/tests/fuzz/midi.dict" -artifact_prefix="$WORK/artifacts/" "$@" \
  "$WORK/corpus" "$WORK/seeds" "$ROOT/tests/fuzz/regressions" >"$LOG" 2>&1
status=$?
set -e
grep -E '^(INFO: seed|#[0-9]+[[:space:]]+(INITED|DONE)|stat::|==[0-9]+==ERROR|SUMMARY|MidiReaderFuzz:)' "$LOG" || true
echo "fuzz_midi.sh: exit status $status; corpus now $(ls "$WORK/corpus" | wc -l) files; artifacts: $(ls "$WORK/artifacts" | wc -l)"
exit $status
