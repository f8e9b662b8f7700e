"""Evaluate weights on the eval split of a config: top-1/top-5 accuracy and loss.

    python tools/eval.py -c output/quickstart/config.yaml --weights output/quickstart/checkpoints/best
"""
import argparse
import json

from . import run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, help="YAML config (a run's config.yaml works)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--weights", required=True, help=".pdparams file or checkpoint prefix")
    p.add_argument("--device", choices=["cpu", "gpu"])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    from edgevit_paddle.config import load_config
    from edgevit_paddle.engine import evaluate

    overrides = args.override + ([f"Global.device={args.device}"] if args.device else [])
    res = evaluate(load_config(args.config, overrides), args.weights)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{res['data']}\ntop-1 {100 * res['acc_top1']:.2f}%  top-5 {100 * res.get('acc_top5', float('nan')):.2f}%"
              f"  loss {res['loss']:.4f}  ({res['images']} images, {res['seconds']:.1f}s)")
    return 0


def cli() -> None:
    run(main)
