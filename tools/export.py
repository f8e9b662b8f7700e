"""``edgevit-export`` from a checkout: see ``edgevit_paddle/cli/export.py``, or run with ``--help``."""
from edgevit_paddle.cli.export import cli

if __name__ == "__main__":
    cli()
