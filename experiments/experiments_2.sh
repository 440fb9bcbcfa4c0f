#!/usr/bin/env bash
# SST-2 (GLUE) with LoRA, next to the TF-IDF + SVM baseline. SST-2 comes from the hub only: offline the first run
# stops with ftlab's message on how to fetch it, and this script exits with its status (2).
#   SIZE=smoke|full MODEL=... RESULTS=... bash experiments/experiments_2.sh   (see experiments/lib.sh)
# GLUE hides SST-2's test labels: "test" figures are the validation split's (the report notes it).
SUITE=experiments_2
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA=(--dataset sst2 --max_length 64)  # single sentences, like Rotten Tomatoes
add_run svm baseline "${DATA[@]}"
add_run lora-r8-a16 train "${DATA[@]}" --method lora --lora_r 8 --lora_alpha 16
run_suite
