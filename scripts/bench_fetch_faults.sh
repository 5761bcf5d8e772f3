#!/usr/bin/env bash
# kmidi fetch-data against every fault of tests/datasets/fetch/fault_server.py
# (127.0.0.1 only): for each case, the configured stall timeout, the time from
# the server's first request to kmidi's exit (and the whole process, start-up included), the exit code, the outcome, and whether anything appeared under the
# data set's final name. Prints a Markdown table (BENCHMARKS.md).
#
#   scripts/bench_fetch_faults.sh [KMIDI] [PAYLOAD_BYTES]   (default build/kmidi, 1000000)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KMIDI=${1:-$ROOT/build/kmidi}
PAYLOAD=${2:-1000000}
TIMEOUT=3
WORK=$(mktemp -d /tmp/kmidi_bench_fetch.XXXXXX)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/served"
: >"$WORK/requests.log"
read -r SHA BYTES < <(python3 "$ROOT/tests/datasets/fetch/make_archive.py" "$WORK/src" "$WORK/served/set.zip" zip set "$PAYLOAD")
python3 "$ROOT/tests/datasets/fetch/fault_server.py" --root "$WORK/served" --log "$WORK/requests.log" \
  --port-file "$WORK/port" --slow-chunk 8192 --slow-delay 0.1 >"$WORK/server.out" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do [ -f "$WORK/port" ] && break; sleep 0.05; done
BASE="http://127.0.0.1:$(cat "$WORK/port")"

echo "archive: $BYTES bytes, sha256 $SHA; --low-speed-timeout $TIMEOUT --connect-timeout $TIMEOUT --retry-wait 0.5"
echo
echo "kmidi start-up alone (kmidi version), included in every time below: $( { /usr/bin/time -f %e "$KMIDI" version >/dev/null; } 2>&1 ) s"
echo
echo "| case | retries | stall timeout | first request to exit | whole process | exit | outcome | final folder after a failure |"
echo "|---|---|---|---|---|---|---|---|"
run_case() {  # NAME MODE RETRIES [SHA] [TO]
  local name=$1 mode=$2 retries=$3 sha=${4:-} to="$WORK/to-${5:-$1}" target tag=${5:-$1}
  tag=${tag//[^A-Za-z0-9]/_}  # keys the server's once-modes per case
  mkdir -p "$to"
  if [ -n "$sha" ]; then
    printf 'datasets:\n  set:\n    title: t\n    url: %s\n    licence: MIT\n    notice: n\n    sha256: %s\n    sha256_source: bench\n' \
      "$BASE/$mode/set.zip?$tag" "$sha" >"$WORK/cat-$mode.yaml"
    target="set --catalogue $WORK/cat-$mode.yaml"
  else
    target="$BASE/$mode/set.zip?$tag"
  fi
  local t0 t1 code=0 out seen
  seen=$(wc -l <"$WORK/requests.log")
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  out=$("$KMIDI" fetch-data $target --to "$to" --no-progress --low-speed-timeout $TIMEOUT --connect-timeout $TIMEOUT \
        --retries "$retries" --retry-wait 0.5 2>&1) || code=$?
  t1=$(date +%s.%N)
  local outcome final="-"
  if [ "$code" = 0 ]; then
    if cmp -s "$to/set/song.mid" "$WORK/src/set/song.mid"; then outcome="complete, files match"; else outcome="WRONG CONTENT"; fi
    if grep -q "resumed at byte" <<<"$out"; then outcome="$outcome, $(grep -o 'resumed at byte [0-9]*' <<<"$out")"; fi
  else
    outcome=$( (grep '^kmidi: ' <<<"$out" || echo "$out") | tail -1 | sed "s|$BASE|URL|g; s|?$tag||g; s|$WORK|WORK|g" | cut -c1-150)
    if [ -e "$to/set" ]; then final="PRESENT"; else final="absent"; fi
  fi
  local first  # when the server saw this case's first request
  first=$(tail -n +"$((seen + 1))" "$WORK/requests.log" | head -1 | jq .t)
  printf '| %s | %s | %s s | %.1f s | %.1f s | %s | %s | %s |\n' "$name" "$retries" "$TIMEOUT" "$(echo "$t1 - $first" | bc)" \
    "$(echo "$t1 - $t0" | bc)" "$code" "$outcome" "$final"
}
run_case "stall mid-body" stall 0
run_case "stall mid-body, first run" stall-once 0 "" resume >/dev/null
run_case "stall mid-body, next run resumes" stall-once 0 "" resume
run_case "stall once, retried in the run" stall-once 1
run_case "stall on every try" stall 2
run_case "silent server (no headers)" silent 0
run_case "connection dropped mid-body" drop-once 2
run_case "wrong bytes (catalogue sha256)" wrong 0 "$SHA"
run_case "HTTP 404" status-404 3
run_case "HTTP 500 on every try" status-500 2
run_case "HTTP 500 once" fail-once 2
run_case "redirect (302)" redirect 0
run_case "slow but alive (80 KB/s, 8 KB every 0.1 s)" slow 0
