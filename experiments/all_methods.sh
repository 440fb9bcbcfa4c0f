#!/usr/bin/env bash
# Every method of the registry at its own default learning rate (ftlab/methods), beside the TF-IDF + SVM baseline:
# the table of the methods study (docs/studies/all-methods.md). SIZE=default is `make run`'s task (IMDB 2,000 / 250 /
# 1,000, 256 tokens, 1 epoch); SIZE=small cuts its training set to 1,000 reviews at 64 tokens, the size of the
# documented table. Methods whose pre-flight refuses the model (prefix tuning on an encoder) are left
# out.
#   SIZE=small SEEDS=3 bash experiments/all_methods.sh   (see experiments/lib.sh); then
#   python main.py report runs/all_methods-small --compare_to lora
SUITE=all_methods
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t NAMES < <("$PYTHON" "$ROOT/scripts/methods_for_model.py" ${MODEL:+"$MODEL"})
add_run svm baseline --dataset imdb
for name in "${NAMES[@]}"; do
  add_run "$name" train --dataset imdb --method "$name"
done
run_suite
