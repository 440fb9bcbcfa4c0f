#!/usr/bin/env bash
# One table per task on real data that arrives through the package index (docs/studies/tasks.md): LoRA against the
# TF-IDF baseline of the task, over SEEDS. Multi-label: disaster_response (34 categories); regression:
# rotten_tomatoes_ratings (mean human rating -4..+4); pairs: lee_similarity (document pairs, human similarity);
# imbalanced single-label: disaster_response's `request` (17% positive), LoRA with balanced class weights against
# the baseline with and without them.
# SIZE=small is this suite's CPU cut, for 2 shared cores at about 3 s per training step: 500 training texts, 1 epoch,
# 200 validation and 400 test texts, 64 tokens (the pairs 128, shared between the two texts). The documented tables
# (SIZE=small SEEDS=3): 17 runs in 50 minutes there, one at a time.
#   SIZE=smoke|small|... SEEDS=3 RESULTS=... bash experiments/tasks.sh   (see experiments/lib.sh)
SUITE=tasks
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [[ "$SIZE" == small ]]; then
  SIZE_FLAGS=(--max_train_samples 500 --max_eval_samples 200 --max_test_samples 400 --max_length 64 --epochs 1)
fi

add_run multi_svm baseline --dataset disaster_response
add_run multi_lora train --dataset disaster_response --method lora
RATINGS=(--dataset rotten_tomatoes_ratings --label_scaling)
add_run ratings_ridge baseline "${RATINGS[@]}"
add_run ratings_lora train "${RATINGS[@]}" --method lora
PAIRS=(--dataset lee_similarity --label_scaling --max_length 128)
add_run pairs_ridge baseline "${PAIRS[@]}"
add_run pairs_lora train "${PAIRS[@]}" --method lora
REQUEST=(--dataset disaster_response --label_column request --metric_for_best macro_f1)
add_run request_svm baseline "${REQUEST[@]}"
add_run request_svm_balanced baseline "${REQUEST[@]}" --class_weights balanced
add_run request_lora_balanced train "${REQUEST[@]}" --method lora --class_weights balanced
run_suite
