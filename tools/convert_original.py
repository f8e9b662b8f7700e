"""``edgevit-convert`` from a checkout: see ``edgevit_paddle/cli/convert.py``, or run with ``--help``."""
from edgevit_paddle.cli.convert import cli

if __name__ == "__main__":
    cli()
