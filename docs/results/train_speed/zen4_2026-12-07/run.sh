# Side by side on one machine, alternating, two rounds: the product before this change (a worktree of da2ff92 in
# /tmp/old), after it (this checkout), and the authors' PyTorch step (a venv with torch 2.13.0+cpu), the latter both
# as it starts and under the same glibc setting our training processes now get.
set -e
OUT=${1:-$(cd "$(dirname "$0")" && pwd)/final}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
MAIN=$(cd "$(dirname "$0")/../../../.." && pwd)
TORCH=${TORCH:-/work/venv-torch/bin/python}
(cd /tmp/old && python -c "import edgevit_paddle.kernels as k; assert k.available()" > /dev/null 2>&1)  # build once
for r in 1 2; do
  (cd /tmp/old && PYTHONPATH=/tmp/old python tools/benchmark.py --models edgevit_xxs --modes train --train-batch 32 \
     --sizes 224 --variants gn-conv,ln-linear,bn-conv --runs 5 --warmup 1 --out "$OUT/before_r$r" > /dev/null 2>&1)
  (cd "$MAIN" && python tools/benchmark.py --models edgevit_xxs --modes train --train-batch 32 \
     --sizes 224 --variants gn-conv,ln-linear,bn-conv --runs 5 --warmup 1 --out "$OUT/after_r$r" > /dev/null 2>&1)
  (cd "$MAIN" && $TORCH docs/results/train_speed/original_training_speed.py --runs 5 > "$OUT/original_r$r.txt" 2>&1)
  (cd "$MAIN" && MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 \
     $TORCH docs/results/train_speed/original_training_speed.py --runs 5 > "$OUT/original_glibc_r$r.txt" 2>&1)
done
