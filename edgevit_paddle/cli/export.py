"""Export a trained model to Paddle Inference (inference.json + .pdiparams + inference.yml), BatchNorms folded.

    python tools/export.py -c output/quickstart/config.yaml --weights output/quickstart/checkpoints/best
    python tools/export.py -c configs/edgevit/edgevit_xxs_flowers102.yaml --out /tmp/xxs   # random weights
    python tools/export.py --model edgevit_xxs --norm bn --out /tmp/xxs_bn                  # registry name, random
    FLAGS_enable_pir_api=0 python tools/export.py ...      # a legacy .pdmodel (e.g. for Paddle-Lite)
"""
import argparse
import os

from . import UserError, run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="the run's config.yaml (or any config)")
    p.add_argument("--model", help="instead of -c: a registered model name, exported with random weights")
    p.add_argument("--norm", help="with --model: the norm switch (EdgeViT: gn, ln, bn)")
    p.add_argument("--ffn", help="with --model: the FFN switch (EdgeViT: conv, linear)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--weights", help="checkpoint prefix or .pdparams (default: random weights, for benchmarks)")
    p.add_argument("--out", help="output folder (default: Export.output_dir, else <run>/inference)")
    p.add_argument("--no-fold", action="store_true", help="keep BatchNorms as they are")
    args = p.parse_args(argv)

    from edgevit_paddle.config import load_config
    from edgevit_paddle.export import export_from_config, export_registered

    if args.model:
        if args.config or args.weights:
            raise UserError("--model exports random weights: give either --model or -c/--weights")
        files = export_registered(args.model, args.out or os.path.join("output", f"{args.model}_inference"),
                                  fold=not args.no_fold, norm=args.norm, ffn=args.ffn)
        for path in files.values():
            print(f"wrote {path}")
        return 0
    if not args.config:
        raise UserError("give -c CONFIG (with --weights for a trained model) or --model NAME")
    res = export_from_config(load_config(args.config, args.override), args.weights, args.out,
                             fold=False if args.no_fold else None)
    for kind, path in res["files"].items():
        print(f"wrote {path}")
    print(f"checked: predictor vs dygraph on a batch of 2, max abs difference {res['max_abs_diff']:.2e}")
    return 0


def cli() -> None:
    run(main)
