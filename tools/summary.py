"""``edgevit-summary`` from a checkout: see ``edgevit_paddle/cli/summary.py``, or run with ``--help``."""
from edgevit_paddle.cli.summary import cli

if __name__ == "__main__":
    cli()
