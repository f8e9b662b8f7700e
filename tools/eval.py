"""``edgevit-eval`` from a checkout: see ``edgevit_paddle/cli/eval.py``, or run with ``--help``."""
from edgevit_paddle.cli.eval import cli

if __name__ == "__main__":
    cli()
