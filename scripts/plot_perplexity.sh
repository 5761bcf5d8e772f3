#!/usr/bin/env bash
# Draws a generator run's perplexity curves as a PNG: validation perplexity
# and the validation split's unigram-baseline perplexity (the train split's
# token frequencies), with training perplexity behind them, against the step.
#
#   scripts/plot_perplexity.sh -m RUN/metrics.jsonl -o OUT.png [-t TITLE]
#
# metrics.jsonl: the rows `kmidi train` writes for a midi_generator job.
# Needs jq and gnuplot. Exit codes as kmidi's: 2 bad usage, 3 bad input data.
set -euo pipefail

die_usage() { echo "plot_perplexity.sh: $*" >&2; exit 2; }
die_data() { echo "plot_perplexity.sh: $*" >&2; exit 3; }

METRICS="" OUT="" TITLE="MIDI generator"
while getopts ":m:o:t:h" opt; do
  case "$opt" in
    m) METRICS=$OPTARG ;;
    o) OUT=$OPTARG ;;
    t) TITLE=$OPTARG ;;
    h) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die_usage "unknown option or missing value (see -h)" ;;
  esac
done
[ -n "$METRICS" ] && [ -n "$OUT" ] || die_usage "need -m and -o"
for tool in jq gnuplot; do command -v "$tool" >/dev/null || die_usage "$tool not found"; done
[ -f "$METRICS" ] || die_data "$METRICS: no such file"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
jq -r 'select(.split == "validation" and .perplexity != null and .unigram_perplexity != null)
       | "\(.step) \(.perplexity) \(.unigram_perplexity)"' "$METRICS" > "$work/validation.txt" \
  || die_data "$METRICS: not JSON lines"
jq -r 'select(.split == "train" and .perplexity != null) | "\(.step) \(.perplexity)"' "$METRICS" > "$work/train.txt"
[ -s "$work/validation.txt" ] || die_data "$METRICS: no validation rows with perplexity and unigram_perplexity"

gnuplot <<EOF
set terminal pngcairo size 900,560 font ",11"
set output "$OUT"
set title "$TITLE"
set xlabel "optimizer step"
set ylabel "perplexity (log scale)"
set logscale y
set grid
set key top right
plot "$work/train.txt" using 1:2 with lines lw 1 lc rgb "#b0b0b0" title "train perplexity", \
     "$work/validation.txt" using 1:3 with linespoints lw 2 lc rgb "#d95f02" pt 7 title "validation: unigram baseline", \
     "$work/validation.txt" using 1:2 with linespoints lw 2 lc rgb "#1b9e77" pt 7 title "validation perplexity"
EOF
[ -s "$OUT" ] || die_data "gnuplot wrote nothing to $OUT"
echo "plot_perplexity.sh: wrote $OUT ($(wc -l < "$work/validation.txt") validation points)"
