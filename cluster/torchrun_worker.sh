#!/usr/bin/env bash
# One torchrun worker, started by cluster/torchrun.sh: runs kmidi and records
# how it ended in <status folder>/attempt<N>.local<L>, so that torchrun.sh can
# name every rank's exit code (torchrun's own summary names only the first
# rank to fail; the ones it then SIGTERMs are not listed). Signals from
# torchrun are passed on to kmidi, and kmidi never outlives this wrapper
# (parent-death signal), so torchrun's SIGKILL still ends it.
#
#   torchrun_worker.sh <status folder> <program> [arguments]
set -u
if [ $# -lt 2 ]; then
  echo "usage: cluster/torchrun_worker.sh <status folder> <program> [arguments]" >&2
  exit 2
fi
status_dir=$1
shift
status_file="$status_dir/attempt${TORCHELASTIC_RESTART_COUNT:-0}.local${LOCAL_RANK:-0}"

if command -v setpriv >/dev/null 2>&1; then
  setpriv --pdeathsig KILL -- "$@" &
else
  "$@" &
fi
child=$!
for sig in TERM INT HUP; do
  trap "kill -$sig $child 2>/dev/null" "$sig"
done
while :; do
  wait "$child"
  code=$?
  # A trapped signal interrupts wait; the child is still there (perhaps a zombie) until wait reaps it.
  kill -0 "$child" 2>/dev/null || break
done
echo "rank=${RANK:-?} code=$code" >"$status_file.tmp" && mv "$status_file.tmp" "$status_file"

if [ "$code" -gt 128 ] && [ "$code" -ne 130 ]; then
  # Killed by a signal: end the same way, so that torchrun sees what kmidi got.
  signal=$((code - 128))
  trap - "$signal" 2>/dev/null
  kill -"$signal" $$
fi
exit "$code"
