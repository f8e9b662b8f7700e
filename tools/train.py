"""``edgevit-train`` from a checkout: see ``edgevit_paddle/cli/train.py``, or run with ``--help``."""
from edgevit_paddle.cli.train import cli

if __name__ == "__main__":
    cli()
