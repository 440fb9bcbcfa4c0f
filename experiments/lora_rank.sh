#!/usr/bin/env bash
# IMDB: LoRA at rank 1 vs rank 16 vs training the head alone, and the chain "LoRA r=16, then the head": the r=16
# adapter is merged into the encoder and a fresh head is trained on top.
#   SIZE=smoke|full MODEL=... RESULTS=... bash experiments/lora_rank.sh   (see experiments/lib.sh)
# With RUN_INDEX (job arrays) lora-r16-then-head needs lora-r16's adapter: start it after lora-r16 has finished. With
# SEEDS each seed of the chain loads the adapter of the same seed (ADAPTER/seed<N>, which `--seeds N` saves and loads).
SUITE=lora_rank
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ADAPTER="$RESULTS/lora-r16/adapter"
add_run lora-r1 train --dataset imdb --method lora --lora_r 1 --lora_alpha 2
add_run lora-r16 train --dataset imdb --method lora --lora_r 16 --lora_alpha 32 --save_adapter "$ADAPTER"
add_run head train --dataset imdb --method head
add_run lora-r16-then-head train --dataset imdb --method head --load_adapter "$ADAPTER"
run_suite
