#!/usr/bin/env bash
# Fine-tuning evidence: EdgeViT-XXS pretrained on MNIST (configs/edgevit/edgevit_xxs_mnist.yaml, 3 epochs), then the
# quickstart's digits from those weights against from scratch: same config, seed and 12 epochs, side by side with one
# thread each.   bash docs/results/finetune/digits_finetune.sh OUT_DIR
set -e
OUT=${1:-output/evidence}
[ -d "$OUT/edgevit_xxs_mnist" ] || python tools/train.py -c configs/edgevit/edgevit_xxs_mnist.yaml \
    -o Global.output_dir="$OUT" -o Global.verbose=0 > "$OUT.mnist.log" 2>&1
COMMON=(-c configs/edgevit/edgevit_xxs_digits_finetune.yaml -o Global.output_dir="$OUT" -o Global.cpu_threads=1
        -o Global.verbose=0)
python tools/train.py "${COMMON[@]}" -o Global.run_name=digits_scratch -o Global.pretrained_model= \
    > "$OUT.scratch.log" 2>&1 &
python tools/train.py "${COMMON[@]}" -o Global.run_name=digits_finetune \
    -o Global.pretrained_model="$OUT/edgevit_xxs_mnist" > "$OUT.finetune.log" 2>&1 &
wait
