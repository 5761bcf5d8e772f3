#!/usr/bin/env bash
# Start-up of kmidi commands, two binaries side by side (issue 21, point 5):
# for each command, N runs of the old and new binary interleaved (old, new,
# old, ...), median wall time (bash's EPOCHREALTIME around the process) and
# median peak RSS (/usr/bin/time -f %M). Prints a Markdown table (BENCHMARKS.md).
#
#   scripts/bench_startup.sh OLD_KMIDI [NEW_KMIDI] [N]   (default build/kmidi, 15)
#
# `train --config missing.yaml` is the start of a LibTorch command up to its
# option check (exit 2): what every torch command pays before its work.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OLD=${1:?usage: scripts/bench_startup.sh OLD_KMIDI [NEW_KMIDI] [N]}
NEW=${2:-$ROOT/build/kmidi}
N=${3:-15}
MIDI=${KMIDI_DATA_ROOT:-$ROOT/../shared/data}/pop909/POP909/001/001.mid
[ -f "$MIDI" ] || { echo "bench_startup: $MIDI not found (a POP909 file)" >&2; exit 2; }
unset OMP_WAIT_POLICY  # as a user who did not choose one
COMMANDS=("--help" "version" "inspect $MIDI" "prepare --config $ROOT/configs/prepare_pop909_sample.yaml --print-config"
          "train --config missing.yaml")

median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

wall_ms() {  # BINARY ARGS...: one run's wall time in ms
  local t0=$EPOCHREALTIME
  "$@" >/dev/null 2>&1 || true
  local t1=$EPOCHREALTIME
  echo "$(( (${t1/./} - ${t0/./}) ))" | awk '{printf "%.1f\n", $1 / 1000}'
}

rss_mb() {  # BINARY ARGS...: one run's peak RSS in MB
  { /usr/bin/time -f %M -o /dev/stdout "$@" 2>/dev/null || true; } | tail -1 | awk '{printf "%.1f\n", $1 / 1024}'
}

echo "old: $OLD"
echo "new: $NEW"
echo "$N runs each, interleaved; $(nproc) CPUs; $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| command | old wall ms | new wall ms | speed-up | old peak RSS MB | new peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|"
for command in "${COMMANDS[@]}"; do
  read -r -a args <<<"$command"
  old_t=() new_t=() old_m=() new_m=()
  for _ in $(seq "$N"); do
    old_t+=("$(wall_ms "$OLD" "${args[@]}")")
    new_t+=("$(wall_ms "$NEW" "${args[@]}")")
  done
  for _ in 1 2 3; do
    old_m+=("$(rss_mb "$OLD" "${args[@]}")")
    new_m+=("$(rss_mb "$NEW" "${args[@]}")")
  done
  ot=$(printf '%s\n' "${old_t[@]}" | median); nt=$(printf '%s\n' "${new_t[@]}" | median)
  om=$(printf '%s\n' "${old_m[@]}" | median); nm=$(printf '%s\n' "${new_m[@]}" | median)
  shown=${command/$MIDI/POP909\/001.mid}
  shown=${shown/$ROOT\//}
  echo "| \`kmidi $shown\` | $ot | $nt | $(awk -v a="$ot" -v b="$nt" 'BEGIN {printf "%.1fx", a / b}') | $om | $nm |"
done
