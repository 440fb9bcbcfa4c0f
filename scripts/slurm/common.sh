# shellcheck shell=bash
# Sourced by the sbatch templates in this folder: the environment every ftlab job on a compute node starts from.
#   FTLAB_DIR     the repository (default: where sbatch was run; sbatch copies the script itself elsewhere)
#   FTLAB_PYTHON  the interpreter (default: FTLAB_DIR/.venv/bin/python, else python3)
#   NUM_PROCESSES processes per node (default: the GPUs SLURM allocated on the node, or 1 without GPUs)
#   WANDB_MODE    offline unless set: compute nodes rarely reach the internet; `wandb sync` uploads later
cd "${FTLAB_DIR:=${SLURM_SUBMIT_DIR:-$PWD}}" || exit 1
if [[ -z "${FTLAB_PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then FTLAB_PYTHON="$PWD/.venv/bin/python"; else FTLAB_PYTHON=python3; fi
fi
# Experiment suites call plain `python main.py`: make that the same interpreter.
PATH="$(dirname "$(command -v "$FTLAB_PYTHON")"):$PATH"
export FTLAB_DIR FTLAB_PYTHON PATH
export WANDB_MODE="${WANDB_MODE:-offline}"
export NUM_PROCESSES="${NUM_PROCESSES:-${SLURM_GPUS_ON_NODE:-1}}"
# Share the node's allocated cores among its processes (torch would otherwise start one thread per core in each).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( ${SLURM_CPUS_ON_NODE:-1} / NUM_PROCESSES > 0 ? ${SLURM_CPUS_ON_NODE:-1} / NUM_PROCESSES : 1 ))}"
# A port per job: two jobs sharing a node must not both rendezvous on accelerate's default 29500.
export MAIN_PROCESS_PORT="${MAIN_PROCESS_PORT:-$((20000 + ${SLURM_JOB_ID:-9500} % 20000))}"
echo "[ftlab-slurm] job ${SLURM_JOB_ID:-?} on $(hostname -s): $NUM_PROCESSES process(es) per node, OMP_NUM_THREADS=$OMP_NUM_THREADS, WANDB_MODE=$WANDB_MODE, repo $FTLAB_DIR"
