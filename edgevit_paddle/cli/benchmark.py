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
import argparse
import os

from ..benchmark import modes
from ..inference import backends
from . import UserError, run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["edgevit_xxs"], help="registered model names")
    p.add_argument("--variants", default="default",
                   help="EdgeViT norm-ffn pairs, e.g. gn-conv,ln-linear; 'all' for the six; 'default' = preset")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    p.add_argument("--sizes", nargs="+", type=int, help="input sizes (default: each model's default)")
    p.add_argument("--modes", nargs="+", default=["eval", "predictor", "onnxruntime", "train"],
                   choices=modes(),
                   help="predictor = exported, BatchNorms folded, Paddle Inference with oneDNN; predictor_nofold: not "
                        "folded; predictor_noonednn: oneDNN off; predictor_bf16: oneDNN bfloat16 (CPUs with "
                        "AVX512-BF16/AMX); onnxruntime: the same export through ONNX Runtime; onnxruntime_int8: "
                        "post-training INT8 (check agreement with --precision-check); openvino, openvino_int8: "
                        "the same ONNX files through OpenVINO")
    p.add_argument("--train-batch", type=int, help="batch size for train mode (default: the largest batch size)")
    p.add_argument("--train-procs", nargs="+", type=int, default=[1],
                   help="train mode also data parallel over N CPU processes (e.g. 1 2): the batch is the global "
                        "batch, --threads are shared out among the processes")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--baseline", help="rows to compare against, e.g. norm=ln,ffn=linear or model=vit_mnist")
    p.add_argument("--quick", action="store_true", help="two tiny models, small inputs, few runs (CI-sized)")
    p.add_argument("--curves", nargs="+", metavar="RUN_DIR", help="plot eval accuracy vs epoch of training runs")
    p.add_argument("--precision-check", nargs="+", metavar=("MODEL_DIR", "IMAGES"),
                   help="top-1 agreement of a reduced precision (--precision) with fp32 on real images")
    p.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "int8"], help="for --precision-check")
    p.add_argument("--backend", default="auto", choices=backends.choices(),
                   help="for --precision-check: the backend that runs both precisions (auto: the table's choice; "
                        "fp16 on the CPU: mnn or ncnn)")
    p.add_argument("--out", default="output/benchmark", help="folder for results.csv, results.md and plots")
    args = p.parse_args(argv)

    from edgevit_paddle.benchmark import (
        add_ratios,
        build_cases,
        machine_info,
        plot_curves,
        run_benchmark,
        write_results,
    )

    if args.curves:
        missing = [r for r in args.curves if not os.path.isfile(os.path.join(r, "metrics.json"))]
        if missing:
            raise UserError(f"no metrics.json in {', '.join(missing)}: give training run folders (output/<run>)")
        print(f"wrote {plot_curves(args.curves, os.path.join(args.out, 'accuracy_vs_epoch.png'))}")
        return 0
    if args.precision_check:
        from edgevit_paddle.inference import expand_inputs, precision_agreement
        if len(args.precision_check) < 2:
            raise UserError("--precision-check needs a model folder and images (files, folders or globs)")
        res = precision_agreement(args.precision_check[0], expand_inputs(args.precision_check[1:]), args.precision,
                                  threads=args.threads, backend=args.backend)
        print(f"{args.precision} vs fp32 ({res['backend']}) on {res['images']} images: top-1 agreement "
              f"{100 * res['top1_agreement']:.2f}% "
              f"({res['disagreements']} differ), max probability difference {res['max_prob_diff']:.4f}")
        return 0
    if args.quick:
        args.models, args.batch_sizes, args.runs, args.warmup = ["vit_mnist", "edgevit_xxs"], [1, 2], 3, 1
        args.sizes = None
    if args.runs < 1 or args.threads < 1:
        raise UserError("--runs and --threads must be >= 1")
    baseline = None
    if args.baseline:
        try:
            baseline = dict(kv.split("=", 1) for kv in args.baseline.split(","))
        except ValueError:
            raise UserError(f"--baseline '{args.baseline}': use key=value pairs, e.g. norm=ln,ffn=linear") from None
    cases = build_cases(args.models, args.variants, args.batch_sizes, args.sizes, args.modes, args.train_batch,
                        quick=args.quick, train_procs=args.train_procs)
    rows = run_benchmark(cases, args.warmup, args.runs, args.threads)
    if baseline:
        add_ratios(rows, baseline)
    machine = machine_info(args.threads)
    paths = write_results(rows, args.out, machine)
    print(open(paths["md"]).read())
    for kind, path in paths.items():
        print(f"wrote {path}")
    return 0


def cli() -> None:
    run(main)
