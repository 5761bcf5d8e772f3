#!/usr/bin/env bash
# Starts kmidi on this node under torchrun: one process per GPU, a static
# rendezvous at MASTER_ADDR:MASTER_PORT, and whole-job restarts after a
# failure (each restart resumes from the newest checkpoint with run.resume=auto).
#
#   cluster/torchrun.sh train --config configs/midi_generator.yaml run.resume=auto
#   cluster/torchrun.sh --dry-run train ...     # print the torchrun command only
#
# On several nodes run it once per node with the same MASTER_ADDR (node 0's
# address) and MASTER_PORT, KMIDI_NNODES, and each node's KMIDI_NODE_RANK.
#
# Use this script rather than torchrun itself: Debian's torchrun 1.13 under
# Python 3.11 crashes at start (AttributeError: 'NoneType' object has no
# attribute 'get') unless given --redirects 2 --tee 2, which this script
# passes. When the job fails it prints how every rank of this node ended
# ("kmidi: attempt 0: rank 0 exit 5 (distributed failure), rank 1 killed by
# SIGKILL"); torchrun's own summary names only the first rank to fail.
#
# Environment [default]:
#   KMIDI_BIN               the kmidi binary [build/kmidi of this checkout]
#   KMIDI_NNODES            number of nodes [1]
#   KMIDI_NODE_RANK         this node's index, 0 .. KMIDI_NNODES-1 [0]
#   KMIDI_NPROC_PER_NODE    processes on this node [number of GPUs, else 1]
#   MASTER_ADDR             node 0's address [127.0.0.1]
#   MASTER_PORT             rendezvous port, free on node 0 [29500]
#   KMIDI_MAX_RESTARTS      restarts of the whole job after a failure [3]
#   KMIDI_MONITOR_INTERVAL  seconds between torchrun's checks of its workers [1]
#   TORCHRUN                the torchrun program [/usr/bin/torchrun, else torchrun on PATH]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
if [ "${1:-}" = "--" ]; then shift; fi
if [ $# -eq 0 ]; then
  echo "usage: cluster/torchrun.sh [--dry-run] <kmidi arguments>, e.g. train --config configs/midi_generator.yaml" >&2
  exit 2
fi

gpus() {
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true; else echo 0; fi
}

KMIDI_BIN=${KMIDI_BIN:-$ROOT/build/kmidi}
NNODES=${KMIDI_NNODES:-1}
NODE_RANK=${KMIDI_NODE_RANK:-0}
NPROC=${KMIDI_NPROC_PER_NODE:-$(gpus)}
if [ "$NPROC" -lt 1 ]; then NPROC=1; fi
if [ -z "${TORCHRUN:-}" ]; then
  # Debian's torchrun lives in /usr/bin; a python3 earlier on PATH may not see Debian's torch.
  if [ -x /usr/bin/torchrun ]; then TORCHRUN=/usr/bin/torchrun; else TORCHRUN=torchrun; fi
fi

# Each worker runs through torchrun_worker.sh, which records its exit status here.
STATUS_DIR=""
if [ "$DRY_RUN" = 0 ]; then
  STATUS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/kmidi-torchrun.XXXXXX")
  trap 'rm -rf "$STATUS_DIR"' EXIT
fi

COMMAND=(
  "$TORCHRUN"
  --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$NPROC"
  --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}"
  --max_restarts "${KMIDI_MAX_RESTARTS:-3}" --monitor_interval "${KMIDI_MONITOR_INTERVAL:-1}"
  # Debian's torchrun 1.13 crashes under Python 3.11 with the default
  # redirects (Std.from_str returns None); redirecting and teeing stderr avoids it.
  --redirects 2 --tee 2
  --no_python /bin/bash "$ROOT/cluster/torchrun_worker.sh" "${STATUS_DIR:-<status folder>}" "$KMIDI_BIN" "$@"
)

if [ "$DRY_RUN" = 1 ]; then
  printf '%q ' "${COMMAND[@]}"
  echo
  exit 0
fi

# kmidi's exit codes (core/Errors.h) in words.
meaning() {
  case "$1" in
    0) echo "exit 0 (ok)" ;;
    1) echo "exit 1 (internal error)" ;;
    2) echo "exit 2 (usage or config error)" ;;
    3) echo "exit 3 (data error)" ;;
    4) echo "exit 4 (check failed)" ;;
    5) echo "exit 5 (distributed failure)" ;;
    130) echo "exit 130 (interrupted)" ;;
    *)
      if [ "$1" -gt 128 ] 2>/dev/null; then
        echo "killed by SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"
      else
        echo "exit $1"
      fi
      ;;
  esac
}

summary() {
  local attempt local_rank line file rank code
  for ((attempt = 0; attempt <= ${KMIDI_MAX_RESTARTS:-3}; attempt++)); do
    [ -n "$(ls "$STATUS_DIR"/attempt$attempt.local* 2>/dev/null)" ] || continue
    line=""
    for ((local_rank = 0; local_rank < NPROC; local_rank++)); do
      file="$STATUS_DIR/attempt$attempt.local$local_rank"
      if [ -f "$file" ]; then
        rank=$(sed -n 's/^rank=\([^ ]*\) .*/\1/p' "$file")
        code=$(sed -n 's/.* code=\([0-9]*\)$/\1/p' "$file")
        line+="${line:+, }rank $rank $(meaning "$code")"
      else
        line+="${line:+, }local rank $local_rank: no exit recorded (not started, or killed with its wrapper)"
      fi
    done
    echo "kmidi: attempt $attempt: $line" >&2
  done
}

set +e
# torchrun runs in the background so that a SIGTERM or SIGINT sent to this
# script (Slurm, Ctrl-C) reaches it, and it still gets to write the summary.
"${COMMAND[@]}" &
torchrun_pid=$!
for sig in TERM INT HUP; do
  trap "kill -$sig $torchrun_pid 2>/dev/null" "$sig"
done
while :; do
  wait "$torchrun_pid"
  code=$?
  kill -0 "$torchrun_pid" 2>/dev/null || break
done
if [ "$code" -ne 0 ]; then
  echo "kmidi: torchrun exited with code $code; how each process of this node ended:" >&2
  summary
fi
exit "$code"
