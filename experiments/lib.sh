# shellcheck shell=bash
# Shared by every suite in experiments/. A suite sets SUITE, sources this file, declares its runs with
# `add_run NAME COMMAND [FLAGS...]` (COMMAND: train or baseline) and ends with `run_suite`.
#
# Environment:
#   SIZE=smoke|small|default|medium|full
#                     smoke (default): 64 / 32 / 64 examples, 32 tokens, 1 epoch: a minute or two on a laptop CPU,
#                     for CI (it shows that a suite runs, not which method is better).
#                     small: `make run`'s task cut for a CPU without bf16 units (a few minutes a run in fp32):
#                     1,000 training reviews at 64 tokens (the same 250 validation and 1,000 test reviews).
#                     default: `make run`'s settings (2,000 / 250 / 1,000 examples, 256 tokens, 1 epoch): no size
#                     flag at all, so every run is main.py's embedded default but for its method.
#                     medium: 2,000 training / 250 validation / 1,000 test examples, 128 tokens, 1 epoch: real
#                     differences between methods in minutes per run on a CPU.
#                     full: whole splits, 2 epochs, batch 32, ftlab's 256 tokens unless a suite sets fewer: for GPUs.
#   MODEL=...         encoder of every fine-tuning run (default: all-MiniLM-L6-v2), e.g. distilbert-base-uncased
#   RESULTS=DIR       where the runs go, one directory per run (default runs/<suite>-<size>); every record also lands
#                     in DIR/index.jsonl, which `main.py report DIR` reads
#   PYTHON=...        interpreter with ftlab's dependencies (default: the project's .venv/bin/python when it exists,
#                     else python)
#   SEEDS=1,2,3       every training run once per seed, in DIR/<name>/seed<N> (`--seeds N`), so the report shows
#                     each configuration's spread, confidence interval and paired tests; the TF-IDF + SVM baseline
#                     is deterministic and runs once. One number N is short for 1,2,...,N (SEEDS=3 = 1,2,3).
#                     Unset: one run each, with ftlab's default seed.
#   LIST_RUNS=1       print "<index><TAB><run name>" per run (per run and seed with SEEDS) and exit (for job arrays)
#   RUN_INDEX=N       run only the N-th of those (0-based; default: $SLURM_ARRAY_TASK_ID when set), without the report
# Finished runs (their result.json exists) are skipped and training runs continue from their newest checkpoint
# (--resume auto), so an interrupted sweep resumes where it stopped, inside the interrupted run too. A run that was
# stopped by a signal exits with 75 (ftlab/preemption.py), which ends the suite with 75 as well.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE="${SIZE:-smoke}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python; fi
fi
RESULTS="${RESULTS:-runs/${SUITE}-${SIZE}}"

case "$SIZE" in
  smoke) SIZE_FLAGS=(--max_train_samples 64 --max_eval_samples 32 --max_test_samples 64 --max_length 32
                     --epochs 1 --batch_size 16 --logging_steps 2) ;;
  small) SIZE_FLAGS=(--max_train_samples 1000 --max_length 64) ;;
  default) SIZE_FLAGS=() ;;
  medium) SIZE_FLAGS=(--max_train_samples 2000 --max_eval_samples 250 --max_test_samples 1000 --max_length 128
                      --epochs 1 --batch_size 16 --logging_steps 10) ;;
  # The GPU recipe keeps the settings its published figures were measured with (cls pooling, the first tokens):
  # the newer defaults (mean pooling for sentence-transformers encoders, head_tail truncation) were chosen by
  # measurements at the CPU sizes only.
  full) SIZE_FLAGS=(--max_train_samples all --max_eval_samples all --max_test_samples all --epochs 2
                    --batch_size 32 --logging_steps 20 --pooling cls --truncation head) ;;
  *) echo "error: SIZE=$SIZE: must be smoke, small, default, medium or full" >&2; exit 2 ;;
esac
MODEL_FLAGS=()
if [[ -n "${MODEL:-}" ]]; then MODEL_FLAGS=(--model "$MODEL"); fi
SEED_LIST=()
if [[ -n "${SEEDS:-}" ]]; then
  if ! [[ "$SEEDS" =~ ^[0-9]+(,[0-9]+)*$ ]]; then
    echo "error: SEEDS=$SEEDS: must be a number of seeds (3 = seeds 1,2,3) or comma-separated seeds (1,5,9)" >&2
    exit 2
  fi
  if [[ "$SEEDS" == *,* ]]; then
    IFS=, read -r -a SEED_LIST <<< "$SEEDS"
    for i in "${!SEED_LIST[@]}"; do SEED_LIST[i]=$((10#${SEED_LIST[i]})); done  # 07 is seed 7, as ftlab reads it
  else
    mapfile -t SEED_LIST < <(seq 1 $((10#$SEEDS)))  # a count: seeds 1..N
    if [[ ${#SEED_LIST[@]} -eq 0 ]]; then echo "error: SEEDS=$SEEDS: must be at least 1" >&2; exit 2; fi
  fi
  if [[ "$(printf '%s\n' "${SEED_LIST[@]}" | sort -u | wc -l)" -ne "${#SEED_LIST[@]}" ]]; then
    echo "error: SEEDS=$SEEDS: a seed is given twice (each seed is one run)" >&2
    exit 2
  fi
fi

RUN_NAMES=()
RUN_ARGS=()  # each run's command and flags, shell-quoted into one string (bash has no arrays of arrays)

add_run() {
  RUN_NAMES+=("$1")
  shift
  RUN_ARGS+=("$(printf '%q ' "$@")")
}

TASKS=()  # what one array task runs: "<run number>" or, with SEEDS, "<run number> <seed>" for training runs

plan_tasks() {
  local i seed
  for i in "${!RUN_NAMES[@]}"; do
    local -a args
    eval "args=(${RUN_ARGS[$i]})"
    if [[ ${#SEED_LIST[@]} -eq 0 || "${args[0]}" == baseline ]]; then
      TASKS+=("$i")
    else
      for seed in "${SEED_LIST[@]}"; do TASKS+=("$i $seed"); done
    fi
  done
}

task_name() {  # run name, and seed<N> when the task has a seed
  local -a task=($1)
  echo "${RUN_NAMES[${task[0]}]}${task[1]:+/seed${task[1]}}"
}

run_one() {
  local -a task=(${TASKS[$1]}) args seed_flags=()
  local name dir="$RESULTS/${RUN_NAMES[${task[0]}]}"
  name="$(task_name "${TASKS[$1]}")"
  eval "args=(${RUN_ARGS[${task[0]}]})"
  # `--seeds N`: the run goes to <dir>/seed<N>, and saves or loads adapters in <adapter dir>/seed<N>, so a chained
  # run (lora_rank.sh) continues from the adapter of its own seed.
  if [[ ${#task[@]} -eq 2 ]]; then seed_flags=(--seeds "${task[1]}"); fi
  if [[ -f "$RESULTS/$name/result.json" ]]; then
    echo "[$SUITE] run $1 $name: finished before ($RESULTS/$name/result.json), skipped"
    return 0
  fi
  local -a resume=()
  if [[ "${args[0]}" == train ]]; then resume=(--resume auto); fi
  echo "[$SUITE] run $1 $name (SIZE=$SIZE)"
  # Size and model flags come first so that a suite's own flags (e.g. --max_length for short texts) win.
  "$PYTHON" "$ROOT/main.py" "${args[0]}" "${SIZE_FLAGS[@]}" "${MODEL_FLAGS[@]}" "${resume[@]}" "${args[@]:1}" \
    --output_dir "$dir" "${seed_flags[@]}"
}

run_suite() {
  plan_tasks
  local count="${#TASKS[@]}" index="${RUN_INDEX:-${SLURM_ARRAY_TASK_ID:-}}" i
  if [[ "${LIST_RUNS:-0}" != 0 ]]; then
    for i in "${!TASKS[@]}"; do printf '%d\t%s\n' "$i" "$(task_name "${TASKS[$i]}")"; done
    return 0
  fi
  if [[ -n "$index" ]]; then
    if ! [[ "$index" =~ ^[0-9]+$ ]] || (( index >= count )); then
      echo "error: RUN_INDEX=$index: must be an integer from 0 to $((count - 1)) (LIST_RUNS=1 lists the runs)" >&2
      exit 2
    fi
    run_one "$index"
    return 0
  fi
  for i in "${!TASKS[@]}"; do run_one "$i"; done
  "$PYTHON" "$ROOT/main.py" report "$RESULTS"
}
