#!/usr/bin/env bash
# IMDB, the seed's study in one sweep: LoRA vs selective vs full vs QLoRA; AdamW vs Adam vs SGD vs SGD-Nesterov;
# linear decay vs LinearLR vs OneCycle; and which linears carry the LoRA adapters. Every variant changes one
# thing from the `lora` run (r=8, AdamW, linear schedule, adapters on all attention and MLP linears).
#   SIZE=smoke|full MODEL=... RESULTS=... bash experiments/study.sh   (see experiments/lib.sh)
SUITE=study
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LORA=(--dataset imdb --method lora --lora_r 8 --lora_alpha 16)
add_run lora train "${LORA[@]}"
add_run selective train --dataset imdb --method selective --unfreeze_layers 2
add_run full train --dataset imdb --method full
add_run qlora train --dataset imdb --method qlora --lora_r 8 --lora_alpha 16

# SGD takes a larger step than the Adam family's 5e-4 to move LoRA weights in the same number of steps.
add_run opt-adam train "${LORA[@]}" --optimizer adam
add_run opt-sgd train "${LORA[@]}" --optimizer sgd --lr 1e-2
add_run opt-sgd-nesterov train "${LORA[@]}" --optimizer sgd_nesterov --lr 1e-2

add_run sched-linearlr train "${LORA[@]}" --scheduler linearlr
add_run sched-onecycle train "${LORA[@]}" --scheduler onecycle

OFF=(--lora_query false --lora_key false --lora_value false --lora_projection false --lora_mlp false)
add_run target-query train "${LORA[@]}" "${OFF[@]}" --lora_query true
add_run target-value train "${LORA[@]}" "${OFF[@]}" --lora_value true
add_run target-query-value train "${LORA[@]}" "${OFF[@]}" --lora_query true --lora_value true
add_run target-attention train "${LORA[@]}" --lora_mlp false
add_run target-mlp train "${LORA[@]}" "${OFF[@]}" --lora_mlp true
run_suite
