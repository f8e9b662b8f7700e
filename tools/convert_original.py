"""Convert the EdgeViT authors' PyTorch weights (.pth, or .npz of arrays under the original keys) to Paddle.

    python tools/convert_original.py --model edgevit_xxs --src edgevit_xxs.pth --num-classes 1000 \
        --out edgevit_xxs_original.pdparams

The result loads into ``create_model(<model>, norm="ln", ffn="linear", num_classes=<n>)``.
"""
from edgevit_paddle.cli.convert import cli

if __name__ == "__main__":
    cli()
