#!/usr/bin/env bash
# Rehearse a multi-host job on one machine: N processes of bert_jax.main joined by
# jax.distributed on localhost, each with K simulated CPU devices.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/local_multiprocess.sh [OPTIONS] N [TRAINING_FLAGS...]

Starts N processes of `python -m bert_jax.main TRAINING_FLAGS` with
--coordinator_address=localhost:PORT --num_processes=N --process_id=i, each seeing K CPU
devices (XLA_FLAGS=--xla_force_host_platform_device_count=K, JAX_PLATFORMS=cpu unless set),
and waits for all of them. Each process logs to LOG_DIR/process-i.log. If one fails, the
others are stopped; the exit status is non-zero if any process failed.

Options:
  --devices-per-process K   simulated CPU devices per process (default: 1)
  --port PORT               coordinator port on localhost (default: a free one)
  --log-dir DIR             where the logs go (default: logs)
  --dry-run                 print the commands instead of running them
  -h, --help                this help

Environment: PYTHON, the interpreter (default: python3).

Example:
  launch/local_multiprocess.sh --devices-per-process=4 2 \
    --config=configs/pretrain.py --workdir=runs/two_hosts
EOF
}

die() {
  echo "local_multiprocess.sh: error: $*" >&2
  exit 2
}

DEVICES=1 PORT='' LOG_DIR=logs DRY_RUN=0
PYTHON=${PYTHON:-python3}
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
    --devices-per-process | --port | --log-dir)
      (($# >= 2)) || die "$1 needs a value"
      case $1 in
        --devices-per-process) DEVICES=$2 ;;
        --port) PORT=$2 ;;
        --log-dir) LOG_DIR=$2 ;;
      esac
      shift ;;
    -*) die "unknown option '$1' before N; see --help" ;;
    *) break ;;
  esac
  shift
done
(($#)) || die "missing N, the number of processes; see --help"
N=$1
shift
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number of processes, not '$N'"
[[ $DEVICES =~ ^[1-9][0-9]*$ ]] || die "--devices-per-process must be positive, not '$DEVICES'"
if [[ -z $PORT ]]; then
  PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("localhost", 0))
print(s.getsockname()[1])')
fi
[[ $PORT =~ ^[0-9]+$ ]] || die "--port must be a number, not '$PORT'"

export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_force_host_platform_device_count=$DEVICES"
export JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}

if ((DRY_RUN)); then
  for ((i = 0; i < N; i++)); do
    args=("$PYTHON" -m bert_jax.main "$@" --coordinator_address="localhost:$PORT"
      --num_processes="$N" --process_id="$i")
    printf 'XLA_FLAGS=%q JAX_PLATFORMS=%q' "$XLA_FLAGS" "$JAX_PLATFORMS"
    printf ' %q' "${args[@]}"
    printf ' > %q 2>&1 &\n' "$LOG_DIR/process-$i.log"
  done
  echo wait
  exit 0
fi

mkdir -p "$LOG_DIR"
pids=()
stop_all() {
  local pid
  for pid in ${pids[@]+"${pids[@]}"}; do
    [[ -z $pid ]] || kill -TERM "$pid" 2>/dev/null || true
  done
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
for ((i = 0; i < N; i++)); do
  "$PYTHON" -m bert_jax.main "$@" --coordinator_address="localhost:$PORT" --num_processes="$N" \
    --process_id="$i" >"$LOG_DIR/process-$i.log" 2>&1 &
  pids+=($!)
  echo "process $i: pid $!, log $LOG_DIR/process-$i.log"
done

# Poll rather than `wait -n`, which older bash lacks. After a failure the others are stopped:
# they would wait for the failed process forever. SIGKILL if SIGTERM is not enough in 60 s.
failed=() running=$N stopping_since=''
while ((running > 0)); do
  sleep 1
  running=0
  for ((i = 0; i < N; i++)); do
    [[ -n ${pids[i]} ]] || continue
    if kill -0 "${pids[i]}" 2>/dev/null; then
      running=$((running + 1))
      continue
    fi
    status=0
    wait "${pids[i]}" || status=$?
    pids[i]=''
    if [[ -n $stopping_since ]]; then
      echo "process $i stopped (status $status)" >&2
    elif ((status != 0)); then
      failed+=("$i")
      echo "process $i failed with status $status; the end of $LOG_DIR/process-$i.log:" >&2
      tail -n 20 "$LOG_DIR/process-$i.log" >&2
    fi
  done
  if ((${#failed[@]} > 0 && running > 0)); then
    if [[ -z $stopping_since ]]; then
      echo "stopping the other processes" >&2
      stop_all
      stopping_since=$SECONDS
    elif ((SECONDS - stopping_since > 60)); then
      for pid in "${pids[@]}"; do [[ -z $pid ]] || kill -KILL "$pid" 2>/dev/null || true; done
    fi
  fi
done
if ((${#failed[@]} > 0)); then
  echo "local_multiprocess.sh: ${#failed[@]} of $N processes failed" >&2
  exit 1
fi
echo "all $N processes finished; logs in $LOG_DIR"
