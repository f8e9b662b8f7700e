"""Evaluate weights on the eval split of a config: top-1/top-5 accuracy and loss.

    python tools/eval.py -c output/quickstart/config.yaml --weights output/quickstart/checkpoints/best
"""
from edgevit_paddle.cli.eval import cli

if __name__ == "__main__":
    cli()
