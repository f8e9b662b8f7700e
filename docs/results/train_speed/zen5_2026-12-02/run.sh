set -e
for r in 1 2; do
  (cd /tmp/old && PYTHONPATH=/tmp/old python tools/benchmark.py --models edgevit_xxs --modes train --train-batch 32 --sizes 224 --variants gn-conv,ln-linear --runs 4 --warmup 1 --out OUT/tr_old_$r > /dev/null 2>&1)
  (cd /work/main && python tools/benchmark.py --models edgevit_xxs --modes train --train-batch 32 --sizes 224 --variants gn-conv,ln-linear --runs 4 --warmup 1 --out OUT/tr_new_$r > /dev/null 2>&1)
  (cd /work/main && python docs/results/train_speed/original_training_speed.py --runs 4 > OUT/tr_orig_$r.txt 2>&1)
done
