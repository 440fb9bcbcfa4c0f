#!/usr/bin/env bash
# IMDB: full fine-tuning vs head-only vs LoRA vs QLoRA, with the untrained model and the TF-IDF + SVM baseline as
# reference rows (the seed's published table). SIZE=full is the GPU setting: whole 50/50 split, 256 tokens, 2 epochs.
#   SIZE=smoke|full MODEL=... RESULTS=... bash experiments/imdb_methods.sh   (see experiments/lib.sh)
SUITE=imdb_methods
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

add_run raw train --dataset imdb --method head --eval_only  # the pretrained encoder with an untrained head
add_run svm baseline --dataset imdb
add_run full train --dataset imdb --method full
add_run head train --dataset imdb --method head
add_run lora train --dataset imdb --method lora
add_run qlora train --dataset imdb --method qlora
run_suite
