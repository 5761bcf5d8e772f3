#!/usr/bin/env bash
# Draws a predicted spectocloud next to its target as a PNG: two panels of
# time (x) against mel pitch (y), each point coloured by its loudness (z),
# with the same axes and colour scale.
#
#   scripts/plot_spectocloud.sh -p PREDICTIONS.jsonl -c CACHE.h5 -o OUT.png [-i ITEM_ID] [-t TITLE]
#
# PREDICTIONS.jsonl: from `kmidi evaluate --predictions` with a spectocloud job
# (rows {"id", "index", "positions", ...}); CACHE.h5: the prepared cache the job
# read (its /id and /positions). ITEM_ID: the row to draw (default: the first).
# Needs jq, h5dump (hdf5-tools) and gnuplot. Exit codes as kmidi's: 2 bad
# usage, 3 bad input data.
set -euo pipefail

die_usage() { echo "plot_spectocloud.sh: $*" >&2; exit 2; }
die_data() { echo "plot_spectocloud.sh: $*" >&2; exit 3; }

PRED="" CACHE="" OUT="" ITEM="" TITLE=""
while getopts ":p:c:o:i:t:h" opt; do
  case "$opt" in
    p) PRED=$OPTARG ;;
    c) CACHE=$OPTARG ;;
    o) OUT=$OPTARG ;;
    i) ITEM=$OPTARG ;;
    t) TITLE=$OPTARG ;;
    h) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown option or missing value (see -h)" ;;
  esac
done
[ -n "$PRED" ] && [ -n "$CACHE" ] && [ -n "$OUT" ] || die_usage "need -p, -c and -o"
for tool in jq h5dump gnuplot; do command -v "$tool" >/dev/null || die_usage "$tool not found"; done
[ -f "$PRED" ] || die_data "$PRED: no such file"
[ -f "$CACHE" ] || die_data "$CACHE: no such file"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

if [ -z "$ITEM" ]; then ITEM=$(head -n 1 "$PRED" | jq -r '.id'); fi
jq -r --arg id "$ITEM" 'select(.id == $id) | .positions[] | "\(.[0]) \(.[1]) \(.[2])"' "$PRED" > "$work/pred.txt"
[ -s "$work/pred.txt" ] || die_data "$PRED: no row with id '$ITEM'"

# The item's row in the cache, from its /id column (one quoted string each).
row=$(h5dump -d /id -y -w 0 "$CACHE" | sed -n '/DATA {/,/}/p' | sed '1d;$d' | tr -d '\n' |
      sed 's/^ *"//; s/"$//; s/", *"/\n/g' | grep -n -x -F -- "$ITEM" | head -n 1 | cut -d: -f1) ||
  die_data "$CACHE: no item '$ITEM'"
row=$((row - 1))
points=$(h5dump -a /points "$CACHE" | sed -n 's/.*(0): *\([0-9]*\).*/\1/p')
[ -n "$points" ] || die_data "$CACHE: no points attribute"
h5dump -d /positions -s "$row,0,0" -c "1,$points,3" -b LE -o "$work/target.bin" "$CACHE" >/dev/null ||
  die_data "$CACHE: cannot read the positions of row $row"

gnuplot <<GNUPLOT
set terminal pngcairo size 1100,480 font ",10"
set output "$OUT"
set multiplot layout 1,2 title "${TITLE:-spectocloud} | ${ITEM//\"/}" noenhanced
set xrange [-1.05:1.05]; set yrange [-1.05:1.05]; set cbrange [-1:1]
set xlabel "time (x)"; set ylabel "mel pitch (y)"; set cblabel "loudness (z)"
set palette defined (-1 "#1b0c41", 0 "#b73779", 1 "#fcffa4")
set key off
set title "target (${points} points)"
plot "$work/target.bin" binary format="%float32%float32%float32" using 1:2:3 with points pt 7 ps 0.35 lc palette
set title "prediction"
plot "$work/pred.txt" using 1:2:3 with points pt 7 ps 0.35 lc palette
unset multiplot
GNUPLOT
echo "plot_spectocloud.sh: wrote $OUT ($ITEM)" >&2
