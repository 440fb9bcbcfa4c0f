#!/usr/bin/env bash
# Submit an experiment suite as a job array sized by the suite itself, one configuration per array task:
#   bash scripts/slurm/submit_array.sh SUITE.sh [sbatch options, e.g. --gpus-per-node=1 --time=2:00:00]
set -euo pipefail
suite="${1:?usage: submit_array.sh SUITE.sh [sbatch options]}"
shift
runs="$(LIST_RUNS=1 bash "$suite" | wc -l)"
((runs > 0)) || { echo "submit_array: LIST_RUNS=1 bash $suite listed no runs" >&2; exit 1; }
exec sbatch --array="0-$((runs - 1))" "$@" "$(dirname "$0")/array.sbatch" "$suite"
