# shellcheck shell=bash
# Sourced by the sbatch templates in this folder: the environment every ftlab job on a compute node starts from.
#   FTLAB_DIR     the repository (default: where sbatch was run; sbatch copies the script itself elsewhere)
#   FTLAB_PYTHON  the interpreter (default: FTLAB_DIR/.venv/bin/python, else python3)
#   NUM_PROCESSES processes per node (default: the GPUs SLURM allocated on the node, or 1 without GPUs)
#   WANDB_MODE    offline unless set: compute nodes rarely reach the internet; `wandb sync` uploads later
# and defines ftlab_run, which runs the training command so that preemption and time limits end in a checkpoint
# and a requeue (below).
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
echo "[ftlab-slurm] job ${SLURM_JOB_ID:-?} attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 )) on $(hostname -s): $NUM_PROCESSES process(es) per node, OMP_NUM_THREADS=$OMP_NUM_THREADS, WANDB_MODE=$WANDB_MODE, repo $FTLAB_DIR"

# --- preemption and time limits ---------------------------------------------------------------------------------
# The templates ask SLURM for SIGUSR1 ahead of the time limit (#SBATCH --signal=B:USR1@<seconds>; preemption with
# a grace time sends it too, as does `scancel --batch --signal=USR1 <job>`). It reaches this shell only. The shell
# passes the request on through a file that every training process checks after each optimizer step
# (FTLAB_STOP_FILE, see ftlab/preemption.py), rather than as a signal, because no signal reaches the training
# processes safely: accelerate's launcher starts them in sessions of their own, dies on SIGUSR1 and kills them 30 s
# after SIGTERM, and helper processes (W&B's service) die on a SIGUSR1 meant for the trainer. For the same reason
# the command runs with SIGUSR1 and SIGTERM ignored: launchers, srun and suite shells inherit that, while ftlab's
# training processes install their own handlers (a signal sent to every process of the job, as SLURM's SIGTERM at
# the time limit or `scancel --full --signal=USR1`, then stops only the training, cleanly).
# The run saves a checkpoint and exits with 75; this shell then requeues the job, and the next attempt (same job
# id: same default output directory) resumes with --resume auto.
FTLAB_INTERRUPTED=75
# torch's elastic agent (under accelerate launch) would take SIGTERM itself and kill the workers 30 s later.
export TORCHELASTIC_SIGNALS_TO_HANDLE="${TORCHELASTIC_SIGNALS_TO_HANDLE:-SIGINT,SIGHUP,SIGQUIT}"

_ftlab_stop_requested() {
    [[ -n "${_ftlab_stop_signal:-}" ]] && return
    _ftlab_stop_signal="$1"
    echo "[ftlab-slurm] SIG$1 at $(date +%T): asking the training processes to save a checkpoint and stop"
    touch "$FTLAB_STOP_FILE"
}

# ftlab_run COMMAND...: run COMMAND (a training command) so that a stop request makes it checkpoint and exit, and
# requeue this job when it did; returns COMMAND's exit status otherwise.
ftlab_run() {
    local child status=0
    export FTLAB_STOP_FILE="${TMPDIR:-/tmp}/ftlab-stop-${SLURM_JOB_ID:-$$}-${SLURM_RESTART_COUNT:-0}"
    rm -f "$FTLAB_STOP_FILE"
    _ftlab_stop_signal=
    trap '_ftlab_stop_requested USR1' USR1
    trap '_ftlab_stop_requested TERM' TERM
    # In the background: bash runs a trap only once the foreground command has ended, `wait` lets it run at once.
    ( trap '' USR1 TERM; exec "$@" ) &
    child=$!
    # A trapped signal ends `wait` early; wait again until the command has ended, then collect its status.
    while kill -0 "$child" 2>/dev/null; do wait "$child" || true; done
    wait "$child" || status=$?
    trap - USR1 TERM
    rm -f "$FTLAB_STOP_FILE"
    # 75: the run stopped cleanly. Under accelerate launch the launcher reports its workers' 75 as a failure (1),
    # so a failure after a stop request counts as interrupted too.
    if (( status == FTLAB_INTERRUPTED )) || [[ $status != 0 && -n "$_ftlab_stop_signal" ]]; then
        echo "[ftlab-slurm] interrupted (exit status $status): requeueing job $SLURM_JOB_ID; its next attempt resumes from the newest checkpoint"
        # SLURM ends this attempt once the requeue is accepted: nothing may follow it.
        if scontrol requeue "$SLURM_JOB_ID"; then exit 0; fi
        echo "[ftlab-slurm] scontrol requeue $SLURM_JOB_ID failed (was the job cancelled?); resubmit it, or run it with --resume auto" >&2
        return "$FTLAB_INTERRUPTED"
    fi
    return "$status"
}
