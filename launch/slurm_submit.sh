#!/usr/bin/env bash
# Submit launch/slurm.sbatch with the job sized from the command line.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: launch/slurm_submit.sh --workdir DIR [OPTIONS] [-- TRAINING_FLAGS...]

Submits `sbatch launch/slurm.sbatch` for NODES nodes x GPUS processes (one per GPU), each
running `python -m bert_jax.main --config=CONFIG --workdir=DIR TRAINING_FLAGS`.
Submitting the same command again continues the run from the workdir's checkpoint.

Options:
  --workdir DIR          the run's workdir, on storage every node sees (required)
  --config FILE          default: configs/pretrain.py
  --nodes N              default: 1
  --gpus-per-node G      default: 8
  --time T               time limit, e.g. 24:00:00 (default: the script's)
  --partition P          (sbatch also reads SBATCH_PARTITION)
  --account A            (sbatch also reads SBATCH_ACCOUNT)
  --dry-run              print the sbatch command instead of running it
  -h, --help             this help

Example:
  launch/slurm_submit.sh --nodes=2 --workdir=/shared/runs/base -- --config.model.preset=base
EOF
}

die() {
  echo "slurm_submit.sh: error: $*" >&2
  exit 2
}

WORKDIR='' CONFIG=configs/pretrain.py NODES=1 GPUS=8 DRY_RUN=0
OPTIONAL=()
TRAINING_FLAGS=()
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1 ;;
    --) shift; TRAINING_FLAGS=("$@"); break ;;
    --*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; continue ;;
    --workdir | --config | --nodes | --gpus-per-node | --time | --partition | --account)
      (($# >= 2)) || die "$1 needs a value"
      case $1 in
        --workdir) WORKDIR=$2 ;;
        --config) CONFIG=$2 ;;
        --nodes) NODES=$2 ;;
        --gpus-per-node) GPUS=$2 ;;
        *) OPTIONAL+=("$1=$2") ;;
      esac
      shift ;;
    *) die "unknown option '$1'; training flags go after '--'; see --help" ;;
  esac
  shift
done
[[ -n $WORKDIR ]] || die "missing --workdir: the run's directory, on storage every node sees"
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive number, not '$NODES'"
[[ $GPUS =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node must be a positive number, not '$GPUS'"

command=(sbatch --job-name="bert_jax-$(basename "$WORKDIR")" --nodes="$NODES"
  --ntasks-per-node="$GPUS" --gpus-per-node="$GPUS" ${OPTIONAL[@]+"${OPTIONAL[@]}"}
  "$(dirname "$0")/slurm.sbatch" --config="$CONFIG" --workdir="$WORKDIR"
  ${TRAINING_FLAGS[@]+"${TRAINING_FLAGS[@]}"})
if ((DRY_RUN)); then
  printf '%q ' "${command[@]}" | sed 's/ $//'
  echo
else
  "${command[@]}"
fi
