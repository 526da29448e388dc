#!/usr/bin/env bash
# Train bert_jax on a Cloud TPU VM, one host or a whole pod slice, with gcloud.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/tpu_vm.sh COMMAND [OPTIONS] [-- TRAINING_FLAGS...]

Commands:
  create   create the TPU VM (--spot for a Spot VM, --queued through a queued resource)
  setup    copy this checkout to every worker and install it there with `pip install -e .`
           and jax[tpu], in a Python 3.11 venv (~/bert_jax_venv)
  run      start training on every worker, in the background under nohup; the workdir is
           gs://BUCKET/RUN. TRAINING_FLAGS (e.g. --config.model.preset=base) go to bert_jax.main
  resume   start the command of the last `run` again on every worker: training continues
           from the workdir's checkpoint
  status   the TPU's state, and whether training is running on each worker
  logs     the end of each worker's log (~/bert_jax_logs/worker-HOSTNAME.log)
  delete   delete the TPU VM (and its queued resource with --queued)

run and resume first stop a previous run on the workers (SIGTERM, which saves a checkpoint;
SIGKILL after 60 s) and remove the TPU lock file /tmp/libtpu_lockfile.
After a preemption that deleted the VM: create, setup and `run` with the same flags again;
the run continues from its checkpoint in the bucket.

Settings (a flag, or the environment variable beside it):
  --project ID              TPU_PROJECT           Google Cloud project              (all)
  --zone ZONE               TPU_ZONE              e.g. us-central2-b                (all)
  --name NAME               TPU_NAME              the TPU VM                        (all)
  --accelerator-type TYPE   TPU_ACCELERATOR_TYPE  e.g. v4-8, v5litepod-16           (create)
  --runtime-version VER     TPU_RUNTIME_VERSION   e.g. tpu-ubuntu2204-base          (create)
  --bucket BUCKET           TPU_BUCKET            gs:// bucket for workdirs         (run)
  --run RUN                 TPU_RUN               run name; default: the TPU's name (run)
  --config FILE             TPU_CONFIG            default: configs/pretrain.py      (run)

Options:
  --spot          create a Spot (preemptible) TPU
  --queued        create, status, delete: go through a queued resource of the same name
  --worker W      logs: one worker's log (default: all)
  --lines N       logs: lines to show (default: 50)
  --follow        logs: keep following the log
  --dry-run       print the commands instead of running them
  -h, --help      this help

Example:
  export TPU_PROJECT=my-project TPU_ZONE=us-central2-b TPU_NAME=bert-v4 TPU_BUCKET=my-bucket
  launch/tpu_vm.sh create --accelerator-type=v4-32 --runtime-version=tpu-ubuntu2204-base --spot
  launch/tpu_vm.sh setup
  launch/tpu_vm.sh run -- --config.model.preset=base --config.batch_size=1024
  launch/tpu_vm.sh logs --follow
EOF
}

die() {
  echo "tpu_vm.sh: error: $*" >&2
  exit 2
}

# Shell-quotes each argument only where needed, so printed commands can be pasted back.
quote() {
  local word out=()
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
      out+=("$word")
    else
      out+=("'${word//\'/\'\\\'\'}'")
    fi
  done
  echo "${out[*]}"
}

execute() {
  if ((DRY_RUN)); then quote "$@"; else "$@"; fi
}

PROJECT=${TPU_PROJECT:-}
ZONE=${TPU_ZONE:-}
NAME=${TPU_NAME:-}
ACCELERATOR_TYPE=${TPU_ACCELERATOR_TYPE:-}
RUNTIME_VERSION=${TPU_RUNTIME_VERSION:-}
BUCKET=${TPU_BUCKET:-}
RUN=${TPU_RUN:-}
CONFIG=${TPU_CONFIG:-configs/pretrain.py}
SPOT=0 QUEUED=0 FOLLOW=0 DRY_RUN=0 WORKER=all TAIL_LINES=50
TRAINING_FLAGS=()

(($#)) || { usage >&2; exit 2; }
case $1 in
  -h | --help) usage; exit 0 ;;
  create | setup | run | resume | status | logs | delete) COMMAND=$1; shift ;;
  *) die "unknown command '$1'; see --help" ;;
esac

while (($#)); do
  case $1 in
    --) shift; TRAINING_FLAGS=("$@"); break ;;
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
    --spot) SPOT=1 ;;
    --queued) QUEUED=1 ;;
    --follow) FOLLOW=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) usage; exit 0 ;;
    --project | --zone | --name | --accelerator-type | --runtime-version | --bucket | --run | \
      --config | --worker | --lines)
      (($# >= 2)) || die "$1 needs a value"
      case $1 in
        --project) PROJECT=$2 ;;
        --zone) ZONE=$2 ;;
        --name) NAME=$2 ;;
        --accelerator-type) ACCELERATOR_TYPE=$2 ;;
        --runtime-version) RUNTIME_VERSION=$2 ;;
        --bucket) BUCKET=$2 ;;
        --run) RUN=$2 ;;
        --config) CONFIG=$2 ;;
        --worker) WORKER=$2 ;;
        --lines) TAIL_LINES=$2 ;;
      esac
      shift ;;
    *) die "unknown option '$1'; training flags go after '--'; see --help" ;;
  esac
  shift
done

# Stops with one line naming every missing setting; each is given as flag:VARIABLE.
require() {
  local setting flag variable missing=
  for setting in "$@"; do
    flag=${setting%%:*} variable=${setting#*:}
    [[ -n ${!variable} ]] || missing+="${missing:+, }--$flag (or TPU_$variable)"
  done
  [[ -z $missing ]] || die "missing $missing"
}
case $COMMAND in
  create) require project:PROJECT zone:ZONE name:NAME accelerator-type:ACCELERATOR_TYPE \
    runtime-version:RUNTIME_VERSION ;;
  run) require project:PROJECT zone:ZONE name:NAME bucket:BUCKET ;;
  *) require project:PROJECT zone:ZONE name:NAME ;;
esac
((${#TRAINING_FLAGS[@]} == 0)) || [[ $COMMAND == run ]] ||
  die "only run takes training flags (resume repeats those of the last run)"

LOCATION=(--project="$PROJECT" --zone="$ZONE")
# shellcheck disable=SC2088 # the tilde is expanded on the workers
LOG_DIR='~/bert_jax_logs'
LOG="$LOG_DIR/worker-\$(hostname).log"
# The training processes, not the remote shell whose command line also names bert_jax.main.
PATTERN="'^[^ ]*python[^ ]* -m bert_jax[.]main'"
STOP_PREVIOUS="pkill -f $PATTERN; for i in \$(seq 60); do pgrep -f $PATTERN >/dev/null || break; \
sleep 1; done; pkill -9 -f $PATTERN; sudo rm -f /tmp/libtpu_lockfile"
START="echo \"=== \$(date -u) starting \$(cat $LOG_DIR/command.sh)\" >> $LOG; \
nohup bash $LOG_DIR/command.sh >> $LOG 2>&1 < /dev/null &"

on_workers() {
  execute gcloud compute tpus tpu-vm ssh "$NAME" "${LOCATION[@]}" --worker="$1" --command="$2"
}

case $COMMAND in
  create)
    spot=()
    if ((SPOT)); then spot=(--spot); fi
    if ((QUEUED)); then
      execute gcloud compute tpus queued-resources create "$NAME" --node-id="$NAME" \
        "${LOCATION[@]}" --accelerator-type="$ACCELERATOR_TYPE" \
        --runtime-version="$RUNTIME_VERSION" ${spot[@]+"${spot[@]}"}
    else
      execute gcloud compute tpus tpu-vm create "$NAME" "${LOCATION[@]}" \
        --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" \
        ${spot[@]+"${spot[@]}"}
    fi
    ;;
  setup)
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    archive=${TMPDIR:-/tmp}/bert_jax-$NAME.tgz
    execute tar -czf "$archive" -C "$repo" --exclude=.git --exclude=.venv --exclude=runs \
      --exclude=__pycache__ --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.ruff_cache .
    execute gcloud compute tpus tpu-vm scp "$archive" "$NAME:bert_jax.tgz" "${LOCATION[@]}" \
      --worker=all
    on_workers all "set -e; command -v python3.11 >/dev/null || { sudo apt-get -qq update && \
sudo apt-get -qq -o DPkg::Lock::Timeout=300 install -y python3.11 python3.11-venv; }; \
rm -rf ~/bert_jax && mkdir ~/bert_jax && tar -xzf ~/bert_jax.tgz -C ~/bert_jax && rm ~/bert_jax.tgz; \
[ -x ~/bert_jax_venv/bin/python ] || python3.11 -m venv ~/bert_jax_venv; \
~/bert_jax_venv/bin/pip install -q --upgrade pip; \
~/bert_jax_venv/bin/pip install -q -e ~/bert_jax 'jax[tpu]'"
    ;;
  run)
    bucket=${BUCKET#gs://}
    workdir=gs://${bucket%/}/${RUN:-$NAME}
    flags=$(quote --config="$CONFIG" --workdir="$workdir" \
      ${TRAINING_FLAGS[@]+"${TRAINING_FLAGS[@]}"})
    training="cd ~/bert_jax && exec ~/bert_jax_venv/bin/python -m bert_jax.main $flags"
    on_workers all "mkdir -p $LOG_DIR && printf '%s\\n' $(quote "$training") \
> $LOG_DIR/command.sh; $STOP_PREVIOUS; $START"
    ((DRY_RUN)) || echo "Started $workdir on every worker; see: launch/tpu_vm.sh logs --follow"
    ;;
  resume)
    on_workers all "test -f $LOG_DIR/command.sh || { echo \"\$(hostname): no command.sh: \
use run\" >&2; exit 1; }; $STOP_PREVIOUS; $START"
    ;;
  status)
    if ((QUEUED)); then
      execute gcloud compute tpus queued-resources describe "$NAME" "${LOCATION[@]}" \
        --format='value(state.state)'
    fi
    execute gcloud compute tpus tpu-vm describe "$NAME" "${LOCATION[@]}" \
      --format='value(state,health,acceleratorType)'
    on_workers all "if pgrep -f $PATTERN >/dev/null; then s=training; else s=stopped; fi; \
echo \"\$(hostname): \$s | \$(tail -n 1 $LOG 2>/dev/null)\""
    ;;
  logs)
    [[ $TAIL_LINES =~ ^[0-9]+$ ]] || die "--lines must be a number, not '$TAIL_LINES'"
    follow=
    if ((FOLLOW)); then follow=' -f'; fi
    on_workers "$WORKER" "tail -n $TAIL_LINES$follow $LOG"
    ;;
  delete)
    if ((QUEUED)); then
      execute gcloud compute tpus queued-resources delete "$NAME" "${LOCATION[@]}" --force --quiet
    else
      execute gcloud compute tpus tpu-vm delete "$NAME" "${LOCATION[@]}" --quiet
    fi
    ;;
esac
