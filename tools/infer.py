"""``edgevit-infer`` from a checkout: see ``edgevit_paddle/cli/infer.py``, or run with ``--help``."""
from edgevit_paddle.cli.infer import cli

if __name__ == "__main__":
    cli()
