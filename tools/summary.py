"""Print a model's layer summary, parameters and GMACs (attention matmuls included).

    python tools/summary.py --model edgevit_xxs --norm gn --ffn conv --input 1,3,224,224
    python tools/summary.py --table            # every preset x variant, as a Markdown table
"""
from edgevit_paddle.cli.summary import cli

if __name__ == "__main__":
    cli()
