#!/usr/bin/env bash
# Robustness of an emotion checkpoint to notation conventions (issue 18 point
# 6): EMOPIA test accuracy unperturbed and under each perturbation of
# datasets/features/ScorePerturbation.h (kmidi evaluate with
# data.test_perturb=SPEC). Prints one row per perturbation: quadrant, valence
# and arousal accuracy, the share of clips predicted valence-positive (by the
# valence_arousal head and by the quadrant) and the feature baseline's
# quadrant accuracy when the task reports it. Goal: quadrant >= 0.60 and
# neither valence sign above 75% under every perturbation.
#
#   scripts/bench_emotion_robustness.sh CHECKPOINT [key=value overrides...]
#   KMIDI_BUILD_DIR=build  CONFIG=<checkpoint's run>/config.yaml
#   PERTURBATIONS="none no_pedal ..."   (default: the list below)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${KMIDI_BUILD_DIR:-$ROOT/build}
case "${1:-}" in
  ""|-h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; [ -n "${1:-}" ]; exit $? ;;
esac
CKPT=$1; shift
[ -f "$CKPT" ] || { echo "bench_emotion_robustness.sh: $CKPT: no such checkpoint" >&2; exit 2; }
CONFIG=${CONFIG:-$(dirname "$(dirname "$CKPT")")/config.yaml}
[ -f "$CONFIG" ] || { echo "bench_emotion_robustness.sh: $CONFIG: no run config (set CONFIG=...)" >&2; exit 2; }
PERTURBATIONS=${PERTURBATIONS:-"none transpose:-3 transpose:3 velocity_flat:80 velocity_levels:2 velocity_levels:3
  velocity_scale:0.6 velocity_scale:1.4 no_pedal pedal_bake tempo_scale:0.8 tempo_scale:1.25 tempo_meta:0.5
  tempo_meta:2 crop:10 no_pedal,velocity_flat:80 pedal_bake,velocity_levels:3,tempo_meta:2"}
LOG=$(mktemp /tmp/kmidi-bench-robustness.XXXXXX)
trap 'rm -f "$LOG"' EXIT

echo "command: scripts/bench_emotion_robustness.sh $CKPT $*"
echo "config: $CONFIG"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' + uncommitted changes')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '| %-45s | %8s | %7s | %7s | %10s | %12s | %8s |\n' perturbation quadrant valence arousal "val+ (va)" "val+ (quad)" baseline
printf '|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..47})" ---------- --------- --------- ------------ -------------- ----------
fails=0
for p in $PERTURBATIONS; do
  if ! "$BUILD/kmidi" evaluate --config "$CONFIG" --checkpoint "$CKPT" --split test "$@" "data.test_perturb=$p" \
      >"$LOG" 2>&1; then
    echo "bench_emotion_robustness.sh: evaluation under '$p' failed:" >&2
    tail -5 "$LOG" >&2
    exit 1
  fi
  row=$(tail -1 "$LOG" | jq -r '.metrics | [.quadrant_accuracy, .valence_accuracy, .arousal_accuracy,
        .valence_positive_share, .quadrant_valence_positive_share, (.baseline_quadrant_accuracy // "n/a")]
        | map(if type == "number" then (. * 1000 | round / 1000 | tostring) else . end) | join(" ")')
  read -r q v a vp qp base <<<"$row"
  ok=$(jq -n --argjson q "$q" --argjson vp "$vp" --argjson qp "$qp" \
        '$q >= 0.6 and ([$vp, 1 - $vp, $qp, 1 - $qp] | max) <= 0.75')
  [ "$ok" = true ] || fails=$((fails + 1))
  printf '| %-45s | %8s | %7s | %7s | %10s | %12s | %8s |%s\n' "$p" "$q" "$v" "$a" "$vp" "$qp" "$base" \
    "$([ "$ok" = true ] || echo ' below target')"
done
echo "perturbations below target (quadrant < 0.60 or a valence sign > 75%): $fails"
