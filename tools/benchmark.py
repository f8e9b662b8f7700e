"""``edgevit-benchmark`` from a checkout: see ``edgevit_paddle/cli/benchmark.py``, or run with ``--help``."""
from edgevit_paddle.cli.benchmark import cli

if __name__ == "__main__":
    cli()
