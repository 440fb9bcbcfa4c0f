#!/usr/bin/env bash
# One table per task on real data that arrives through the package index (docs/studies/tasks.md): LoRA against the
# TF-IDF baseline of the task, over SEEDS. Multi-label: disaster_response (34 categories); regression:
# rotten_tomatoes_ratings (mean human rating -4..+4); pairs: lee_similarity (document pairs, human similarity);
# imbalanced single-label: disaster_response's `request` (17% positive), with and without balanced class weights.
# The documented tables: SIZE=small SEEDS=3 (1,000 training texts at 64 tokens, the pairs at 128 shared; 2 epochs;
# 250 validation and 500 test texts).
#   SIZE=smoke|small|... SEEDS=3 RESULTS=... bash experiments/tasks.sh   (see experiments/lib.sh)
SUITE=tasks
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MULTI=(--dataset disaster_response --epochs 2 --max_test_samples 500)
add_run multi_svm baseline "${MULTI[@]}"
add_run multi_lora train "${MULTI[@]}" --method lora
RATINGS=(--dataset rotten_tomatoes_ratings --label_scaling --epochs 2 --max_test_samples 500)
add_run ratings_ridge baseline "${RATINGS[@]}"
add_run ratings_lora train "${RATINGS[@]}" --method lora
PAIRS=(--dataset lee_similarity --label_scaling --epochs 2 --max_length 128)
add_run pairs_ridge baseline "${PAIRS[@]}"
add_run pairs_lora train "${PAIRS[@]}" --method lora
REQUEST=(--dataset disaster_response --label_column request --epochs 2 --max_test_samples 500
         --metric_for_best macro_f1 --load_best)
add_run request_svm baseline "${REQUEST[@]}"
add_run request_lora train "${REQUEST[@]}" --method lora
add_run request_svm_balanced baseline "${REQUEST[@]}" --class_weights balanced
add_run request_lora_balanced train "${REQUEST[@]}" --method lora --class_weights balanced
run_suite
