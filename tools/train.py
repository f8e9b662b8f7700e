"""Train a model from a YAML config under paddle.Model, with VisualDL logs, checkpoints and resume.

    python tools/train.py                                   # configs/quickstart.yaml: offline, minutes on a CPU
    python tools/train.py -c configs/edgevit/edgevit_xxs_flowers102.yaml -o Data.root=../shared/data/flowers102
    python tools/train.py --resume output/quickstart -o Global.epochs=40
    python -m paddle.distributed.launch --devices 0,1 tools/train.py -c CONFIG -o Global.device=gpu
"""
from edgevit_paddle.cli.train import cli

if __name__ == "__main__":
    cli()
