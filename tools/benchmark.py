"""Benchmark registered models and variants: parameters, GMACs, latency and throughput in dygraph eval, in the
exported predictor (BatchNorms folded and not) and in training steps (paddle.Model.train_batch).

    python tools/benchmark.py --models edgevit_xxs --variants all --batch-sizes 1 8 --modes eval predictor \\
        predictor_nofold --baseline norm=ln,ffn=linear --out output/bench/edgevit_norms
    python tools/benchmark.py --models vit_mnist vitbnffn_mnist vitbn_mnist --batch-sizes 1 100 --baseline \\
        model=vit_mnist --out output/bench/vit_bn
    python tools/benchmark.py --modes train --train-batch 32 --train-procs 1 2 --sizes 224 --baseline procs=1
    python tools/benchmark.py --quick --out /tmp/bench                 # two tiny models, a few runs (CI)
    python tools/benchmark.py --curves output/vit_mnist output/vitbn_mnist --out output/bench/curves
"""
from edgevit_paddle.cli.benchmark import cli

if __name__ == "__main__":
    cli()
