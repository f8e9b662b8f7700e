"""Convert the EdgeViT authors' PyTorch weights (.pth, or .npz of arrays under the original keys) to Paddle.

    python tools/convert_original.py --model edgevit_xxs --src edgevit_xxs.pth --num-classes 1000 \
        --out edgevit_xxs_original.safetensors

The result loads into ``create_model(<model>, norm="ln", ffn="linear", num_classes=<n>)``.
"""
import argparse
import os

from . import run


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="edgevit_xxs", help="edgevit_xxs | edgevit_xs | edgevit_s")
    p.add_argument("--src", required=True, help="authors' state_dict: .pth/.pt (needs torch) or .npz")
    p.add_argument("--num-classes", type=int, default=1000, help="classes of the weights' head")
    p.add_argument("--out", required=True, help="output file: .safetensors (pickle-free: what to share) or .pdparams")
    args = p.parse_args(argv)

    from edgevit_paddle import create_model
    from edgevit_paddle.convert import load_original
    from edgevit_paddle.errors import UserError
    from edgevit_paddle.models.edgevit import AUTHORS_VARIANT
    from edgevit_paddle.weights import WEIGHTS_EXTENSIONS, model_identity, save_weights

    if not args.out.endswith(WEIGHTS_EXTENSIONS):
        raise UserError(f"--out {args.out}: name a {' or '.join(WEIGHTS_EXTENSIONS)} file")

    model = load_original(create_model(args.model, num_classes=args.num_classes, **AUTHORS_VARIANT), args.src)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    save_weights(model.state_dict(), args.out, model_identity(model))  # identified: eval and export check it
    print(f"wrote {args.out} ({args.model}, norm=ln, ffn=linear, {args.num_classes} classes)")
    return 0


def cli() -> None:
    run(main)
