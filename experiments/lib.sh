# shellcheck shell=bash
# Shared by every suite in experiments/. A suite sets SUITE, sources this file, declares its runs with
# `add_run NAME COMMAND [FLAGS...]` (COMMAND: train or baseline) and ends with `run_suite`.
#
# Environment:
#   SIZE=smoke|medium|full
#                     smoke (default): a few hundred examples, 64 tokens, 1 epoch: minutes on a laptop CPU, for CI.
#                     medium: 2,000 training / 250 validation / 1,000 test examples, 128 tokens, 1 epoch: real
#                     differences between methods in minutes per run on a CPU.
#                     full: whole splits, 2 epochs, batch 32, ftlab's 256 tokens unless a suite sets fewer: for GPUs.
#   MODEL=...         encoder of every fine-tuning run (default: all-MiniLM-L6-v2), e.g. distilbert-base-uncased
#   RESULTS=DIR       where the runs go, one directory per run (default runs/<suite>-<size>); every record also lands
#                     in DIR/index.jsonl, which `main.py report DIR` reads
#   PYTHON=...        interpreter with ftlab's dependencies (default: python)
#   LIST_RUNS=1       print "<index><TAB><run name>" per run and exit (for job arrays)
#   RUN_INDEX=N       run only the N-th run (0-based; default: $SLURM_ARRAY_TASK_ID when set), without the report
# Finished runs (their result.json exists) are skipped, so an interrupted sweep resumes where it stopped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE="${SIZE:-smoke}"
PYTHON="${PYTHON:-python}"
RESULTS="${RESULTS:-runs/${SUITE}-${SIZE}}"

case "$SIZE" in
  smoke) SIZE_FLAGS=(--max_train_samples 128 --max_eval_samples 64 --max_test_samples 128 --max_length 64
                     --epochs 1 --batch_size 16 --logging_steps 2) ;;
  medium) SIZE_FLAGS=(--max_train_samples 2000 --max_eval_samples 250 --max_test_samples 1000 --max_length 128
                      --epochs 1 --batch_size 16 --logging_steps 10) ;;
  full) SIZE_FLAGS=(--max_train_samples all --max_eval_samples all --max_test_samples all --epochs 2
                    --batch_size 32 --logging_steps 20) ;;
  *) echo "error: SIZE=$SIZE: must be smoke, medium or full" >&2; exit 2 ;;
esac
MODEL_FLAGS=()
if [[ -n "${MODEL:-}" ]]; then MODEL_FLAGS=(--model "$MODEL"); fi

RUN_NAMES=()
RUN_ARGS=()  # each run's command and flags, shell-quoted into one string (bash has no arrays of arrays)

add_run() {
  RUN_NAMES+=("$1")
  shift
  RUN_ARGS+=("$(printf '%q ' "$@")")
}

run_one() {
  local name="${RUN_NAMES[$1]}" dir="$RESULTS/${RUN_NAMES[$1]}"
  local -a args
  eval "args=(${RUN_ARGS[$1]})"
  if [[ -f "$dir/result.json" ]]; then
    echo "[$SUITE] run $1 $name: finished before ($dir/result.json), skipped"
    return 0
  fi
  echo "[$SUITE] run $1 $name (SIZE=$SIZE)"
  # Size and model flags come first so that a suite's own flags (e.g. --max_length for short texts) win.
  "$PYTHON" "$ROOT/main.py" "${args[0]}" "${SIZE_FLAGS[@]}" "${MODEL_FLAGS[@]}" "${args[@]:1}" --output_dir "$dir"
}

run_suite() {
  local count="${#RUN_NAMES[@]}" index="${RUN_INDEX:-${SLURM_ARRAY_TASK_ID:-}}" i
  if [[ "${LIST_RUNS:-0}" != 0 ]]; then
    for i in "${!RUN_NAMES[@]}"; do printf '%d\t%s\n' "$i" "${RUN_NAMES[$i]}"; done
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
  for i in "${!RUN_NAMES[@]}"; do run_one "$i"; done
  "$PYTHON" "$ROOT/main.py" report "$RESULTS"
}
