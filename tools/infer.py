"""Classify images with an exported model through Paddle Inference (CPU with oneDNN, GPU, GPU + TensorRT).

    python tools/infer.py --model-dir output/quickstart/inference img.png more/ "photos/**/*.jpg"
    python tools/infer.py --model-dir DIR --precision bf16 --batch-size 8 --json images/
    python tools/infer.py --model-dir DIR --device gpu --use-tensorrt --precision fp16 images/   (GPU build only)

Unreadable files are reported on their own line and skipped; the exit code is 1 when any input failed.
"""
from edgevit_paddle.cli.infer import cli

if __name__ == "__main__":
    cli()
