#!/usr/bin/env bash
# Draws a `kmidi evaluate-generation` report as a PNG: the confusion matrix
# (quadrant asked of the generator against the quadrant the judge hears, with
# the agreements and the judge's own test accuracy in the title) and, for each
# music metric, the kernel density of the generated and the real pieces'
# values with their overlapping area.
#
#   scripts/plot_generation_report.sh -r REPORT.json -o OUT.png [-t TITLE]
#
# Needs jq and gnuplot. Exit codes as kmidi's: 2 bad usage, 3 bad input data.
set -euo pipefail

die_usage() { echo "plot_generation_report.sh: $*" >&2; exit 2; }
die_data() { echo "plot_generation_report.sh: $*" >&2; exit 3; }

REPORT="" OUT="" TITLE="Emotion control"
while getopts ":r:o:t:h" opt; do
  case "$opt" in
    r) REPORT=$OPTARG ;;
    o) OUT=$OPTARG ;;
    t) TITLE=$OPTARG ;;
    h) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown option or missing value (see -h)" ;;
  esac
done
[ -n "$REPORT" ] && [ -n "$OUT" ] || die_usage "need -r and -o"
for tool in jq gnuplot; do command -v "$tool" >/dev/null || die_usage "$tool not found"; done
[ -f "$REPORT" ] || die_data "$REPORT: no such file"
jq -e '.confusion.matrix and .music_metrics.metrics and .agreement.overall' "$REPORT" >/dev/null 2>&1 \
  || die_data "$REPORT: not an evaluate-generation report (needs confusion.matrix, agreement, music_metrics)"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
# Confusion cells as "column row count" (row 0 = Q1 at the top).
jq -r '.confusion.matrix | to_entries[] | .key as $t | .value | to_entries[] | "\(.key) \($t) \(.value)"' \
  "$REPORT" > "$work/confusion.txt"
summary=$(jq -r '.agreement.overall as $a | .judge_on_real_test as $j |
  "agreement: quadrant \($a.quadrant_agreement * 1000 | round / 1000), valence \($a.valence_sign_agreement * 1000 | round / 1000), arousal \($a.arousal_sign_agreement * 1000 | round / 1000) (\($a.pieces) pieces); judge on real test: \(($j.quadrant_accuracy // 0) * 1000 | round / 1000)"' "$REPORT")
mapfile -t metrics < <(jq -r '.music_metrics.metrics | keys_unsorted[]' "$REPORT")
plots=""
for m in "${metrics[@]}"; do
  jq -r --arg m "$m" '.music_metrics.metrics[$m].generated[]' "$REPORT" > "$work/$m.generated"
  jq -r --arg m "$m" '.music_metrics.metrics[$m].real[]' "$REPORT" > "$work/$m.real"
  area=$(jq -r --arg m "$m" '.music_metrics.metrics[$m].overlap_area | if . == null then "n/a" else (. * 1000 | round / 1000 | tostring) end' "$REPORT")
  ng=$(wc -l < "$work/$m.generated") nr=$(wc -l < "$work/$m.real")
  plots+="set title \"$m (overlap $area)\"
"
  if [ "$ng" -gt 0 ]; then
    plots+="plot \"$work/$m.real\" using 1:(1.0/$nr) smooth kdensity lw 2 lc rgb \"#1b9e77\" title \"real ($nr)\", \"$work/$m.generated\" using 1:(1.0/$ng) smooth kdensity lw 2 lc rgb \"#d95f02\" title \"generated ($ng)\"
"
  else
    plots+="plot \"$work/$m.real\" using 1:(1.0/$nr) smooth kdensity lw 2 lc rgb \"#1b9e77\" title \"real ($nr)\"
"
  fi
done

gnuplot <<EOF
set terminal pngcairo size 1500,1150 font ",10" noenhanced
set output "$OUT"
set multiplot layout 3,4 title "$TITLE\n$summary"
set title "confusion: asked (rows) vs judged (columns)"
set xrange [-0.5:3.5]; set yrange [3.5:-0.5]
set xtics ("Q1" 0, "Q2" 1, "Q3" 2, "Q4" 3); set ytics ("Q1" 0, "Q2" 1, "Q3" 2, "Q4" 3)
set palette defined (0 "white", 1 "#1b9e77")
unset key
plot "$work/confusion.txt" using 1:2:3 with image, "$work/confusion.txt" using 1:2:(sprintf("%d", \$3)) with labels font ",14"
unset xrange; unset yrange; set xtics autofreq; set ytics autofreq; unset colorbox
set key top right font ",8"
set grid
$plots
unset multiplot
EOF
[ -s "$OUT" ] || die_data "gnuplot wrote nothing to $OUT"
echo "plot_generation_report.sh: wrote $OUT (${#metrics[@]} metrics)"
