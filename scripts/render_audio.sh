#!/usr/bin/env bash
# Renders MIDI files to WAV with fluidsynth and a General MIDI soundfont, so
# that training excerpts have audio paired with their MIDI.
#
#   scripts/render_audio.sh -o OUT_DIR [-g GAIN] [-r RATE] [-s SOUNDFONT] [-f] INPUT...
#
# INPUT: MIDI files, or folders searched recursively for *.mid / *.midi (any case).
# Output: OUT_DIR/<name>.wav for a file given directly; for a folder, the path
# relative to that folder with .wav for .mid (subfolders are created).
# Existing outputs are skipped unless -f. Each WAV is written to a temporary
# file and renamed into place only once it checks out, so a failure or an
# interruption never leaves a half file under the final name.
#
# Rendering is deterministic: the same fluidsynth, soundfont, options and MIDI
# give a byte-identical WAV. Reverb and chorus are off (-R 0 -C 0), the gain is
# fixed, and the output is 16-bit PCM WAV, stereo, at RATE.
#
# Fails loudly (stops at the first problem, naming the file): a missing input,
# fluidsynth exiting non-zero or printing an error (fluidsynth reports corrupt
# MIDI on stderr but still exits 0), or a rendered file holding only silence.
# Exit codes as kmidi's: 2 bad usage, 3 bad input data or render failure.
#
#   -o DIR   output folder (required)
#   -g GAIN  fluidsynth master gain, default 0.5 (peaks of dense POP909 songs stay below ~0.4)
#   -r RATE  sample rate in Hz, default 44100
#   -s SF2   soundfont, default /usr/share/sounds/sf2/FluidR3_GM.sf2 (Debian fluid-soundfont-gm)
#   -f       re-render outputs that already exist
set -euo pipefail

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; }
die_usage() { echo "render_audio.sh: $*" >&2; exit 2; }
die_data() { echo "render_audio.sh: $*" >&2; exit 3; }

OUT_DIR=""
GAIN=0.5
RATE=44100
SOUNDFONT=/usr/share/sounds/sf2/FluidR3_GM.sf2
FORCE=0
while getopts ":o:g:r:s:fh" opt; do
  case "$opt" in
    o) OUT_DIR=$OPTARG ;;
    g) GAIN=$OPTARG ;;
    r) RATE=$OPTARG ;;
    s) SOUNDFONT=$OPTARG ;;
    f) FORCE=1 ;;
    h) usage; exit 0 ;;
    :) die_usage "option -$OPTARG needs a value" ;;
    *) die_usage "unknown option -$OPTARG (see -h)" ;;
  esac
done
shift $((OPTIND - 1))

[ -n "$OUT_DIR" ] || die_usage "missing -o OUT_DIR"
[ $# -gt 0 ] || die_usage "no MIDI files or folders given"
[[ "$RATE" =~ ^[1-9][0-9]*$ ]] || die_usage "-r: expected a rate in Hz, got '$RATE'"
[[ "$GAIN" =~ ^[0-9]*\.?[0-9]+$ ]] || die_usage "-g: expected a non-negative number, got '$GAIN'"
command -v fluidsynth >/dev/null 2>&1 || die_usage "fluidsynth not found (scripts/setup.sh installs it)"
[ -f "$SOUNDFONT" ] || die_usage "soundfont not found: $SOUNDFONT (scripts/setup.sh installs fluid-soundfont-gm)"
mkdir -p "$OUT_DIR"

# Pairs of (MIDI path, output path), collected first so that a bad argument
# fails before anything renders.
declare -a MIDI_FILES=() WAV_FILES=()
declare -A SEEN_OUTPUT=()
add_job() {
  local midi=$1 wav=$2
  if [ -n "${SEEN_OUTPUT[$wav]+x}" ]; then
    die_usage "'$midi' and '${SEEN_OUTPUT[$wav]}' would both render to '$wav'"
  fi
  SEEN_OUTPUT[$wav]=$midi
  MIDI_FILES+=("$midi")
  WAV_FILES+=("$wav")
}
strip_midi_ext() { local p=$1; p=${p%.[mM][iI][dD]}; p=${p%.[mM][iI][dD][iI]}; printf '%s' "$p"; }

for input in "$@"; do
  if [ -d "$input" ]; then
    found=0
    while IFS= read -r -d '' midi; do
      rel=${midi#"$input"/}
      add_job "$midi" "$OUT_DIR/$(strip_midi_ext "$rel").wav"
      found=1
    done < <(find "$input" -type f \( -iname '*.mid' -o -iname '*.midi' \) -print0 | LC_ALL=C sort -z)
    [ "$found" = 1 ] || die_data "$input: folder holds no .mid or .midi files"
  elif [ -f "$input" ]; then
    name=$(basename -- "$input")
    add_job "$input" "$OUT_DIR/$(strip_midi_ext "$name").wav"
  else
    die_data "$input: no such file or folder"
  fi
done

rendered=0
skipped=0
for i in "${!MIDI_FILES[@]}"; do
  midi=${MIDI_FILES[$i]}
  wav=${WAV_FILES[$i]}
  if [ -e "$wav" ] && [ "$FORCE" = 0 ]; then
    skipped=$((skipped + 1))
    continue
  fi
  mkdir -p "$(dirname -- "$wav")"
  tmp="$wav.tmp.$$"
  log="$wav.log.$$"
  trap 'rm -f -- "$tmp" "$log"' EXIT
  status=0
  fluidsynth -n -i -q -R 0 -C 0 -g "$GAIN" -r "$RATE" -T wav -O s16 -F "$tmp" -- "$SOUNDFONT" "$midi" \
    >/dev/null 2>"$log" || status=$?
  if [ "$status" != 0 ] || grep -q '^fluidsynth: error' "$log"; then
    echo "render_audio.sh: fluidsynth failed on $midi (exit $status):" >&2
    sed 's/^/  /' "$log" >&2
    exit 3
  fi
  # A 16-bit PCM WAV from fluidsynth has a 44-byte header; everything after
  # it must hold at least one non-zero byte, or nothing was played.
  if [ ! -s "$tmp" ] || [ "$(tail -c +45 -- "$tmp" | tr -d '\000' | head -c 1 | wc -c)" = 0 ]; then
    die_data "$midi: rendered only silence (no playable notes?)"
  fi
  mv -f -- "$tmp" "$wav"
  rm -f -- "$log"
  trap - EXIT
  rendered=$((rendered + 1))
  echo "rendered $midi -> $wav" >&2
done
echo "render_audio.sh: rendered $rendered, skipped $skipped existing, in $OUT_DIR" >&2
