"""Train a model from a YAML config under paddle.Model, with VisualDL logs, checkpoints and resume.

    python tools/train.py                                   # configs/quickstart.yaml: offline, minutes on a CPU
    python tools/train.py -c configs/edgevit/edgevit_xxs_flowers102.yaml -o Data.root=../shared/data/flowers102
    python tools/train.py --resume output/quickstart -o Global.epochs=40
    python -m paddle.distributed.launch --devices 0,1 tools/train.py -c CONFIG -o Global.device=gpu
"""
import argparse
import os
import sys

from . import UserError, run

#: the offline quickstart, in the checkout's configs/ (the package is installed from a checkout with pip install -e)
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs",
                              "quickstart.yaml")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", help="YAML config (default: configs/quickstart.yaml; with --resume: the run's)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. -o Optimizer.lr=0.0005 -o Global.epochs=5 (repeatable)")
    p.add_argument("--resume", help="continue a run: its folder (output/<run>) or 'auto' for this config's newest")
    p.add_argument("--weights-only", action="store_true",
                   help="with --resume: restore the weights only and restart optimizer and LR schedule from the config "
                        "(for a checkpoint whose .pdopt is lost)")
    p.add_argument("--device", choices=["cpu", "gpu"], help="shortcut for -o Global.device=...")
    args = p.parse_args(argv)
    overrides = args.override + ([f"Global.device={args.device}"] if args.device else [])

    from edgevit_paddle.engine import load_run_config, resolve_resume, train
    from edgevit_paddle.engine.process import Terminated

    config = args.config or (None if args.resume and args.resume != "auto" else DEFAULT_CONFIG)
    if config == DEFAULT_CONFIG and not os.path.isfile(DEFAULT_CONFIG):
        raise UserError(f"the default config {DEFAULT_CONFIG} is not here (the package was not installed from a "
                        "checkout): give one with -c CONFIG")
    resume = resolve_resume(args.resume, config, overrides)
    if args.resume == "auto" and not args.config:  # the run found goes on with its own config, not the default one
        config = None
    cfg = load_run_config(config, overrides, resume)
    try:
        train(cfg, resume=resume, weights_only=args.weights_only)
    except Terminated:
        return 143  # 128 + SIGTERM
    except KeyboardInterrupt:
        return 130  # 128 + SIGINT
    return 0


def cli() -> None:
    from edgevit_paddle.engine.process import TRAINING_ENV, training_env
    if any(key not in os.environ for key in TRAINING_ENV):  # read when Paddle loads: start again with it set
        os.execve(sys.executable, [sys.executable, *sys.argv], training_env())
    run(main)
