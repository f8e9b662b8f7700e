"""Export a trained model to Paddle Inference (inference.json + .pdiparams + inference.yml), BatchNorms folded.

    python tools/export.py -c output/quickstart/config.yaml --weights output/quickstart/checkpoints/best
    python tools/export.py -c configs/edgevit/edgevit_xxs_flowers102.yaml --out /tmp/xxs   # random weights
    python tools/export.py --model edgevit_xxs --norm bn --out /tmp/xxs_bn                  # registry name, random
    FLAGS_enable_pir_api=0 python tools/export.py ...      # a legacy .pdmodel (e.g. for Paddle-Lite)
"""
from edgevit_paddle.cli.export import cli

if __name__ == "__main__":
    cli()
