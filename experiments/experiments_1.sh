#!/usr/bin/env bash
# Rotten Tomatoes: the TF-IDF + SVM baseline, full fine-tuning, and LoRA at three rank/alpha settings.
#   SIZE=smoke|full MODEL=... RESULTS=... bash experiments/experiments_1.sh   (see experiments/lib.sh)
SUITE=experiments_1
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Rotten Tomatoes snippets are one sentence: median 26 MiniLM tokens, longest 79; 64 cut 4 of 8,454 training texts.
DATA=(--dataset rotten_tomatoes --max_length 64)
add_run svm baseline "${DATA[@]}"
add_run full train "${DATA[@]}" --method full
add_run lora-r8-a16 train "${DATA[@]}" --method lora --lora_r 8 --lora_alpha 16
add_run lora-r16-a16 train "${DATA[@]}" --method lora --lora_r 16 --lora_alpha 16
add_run lora-r16-a32 train "${DATA[@]}" --method lora --lora_r 16 --lora_alpha 32
run_suite
