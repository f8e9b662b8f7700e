"""Baseline for the training-speed table (#13): the EdgeViT authors' XXS (the PyTorch module of
``docs/results/deploy/original_in_onnxruntime.py``, which reproduces their reference logits) trained on the CPU the
way our benchmark's train mode does it: batch 32, 224x224, AdamW, cross-entropy, 1000 classes, 2 threads.

Not part of the package (it needs torch: ``pip install torch==2.13.0``).

    python docs/results/train_speed/original_training_speed.py [--runs 5] [--batch 32] [--threads 2]
"""
import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy"))
from original_in_onnxruntime import EdgeViTXXS  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    net = EdgeViTXXS(num_classes=1000).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    x = torch.randn(a.batch, 3, 224, 224)
    y = torch.randint(0, 1000, (a.batch,))
    times = []
    for i in range(a.warmup + a.runs):
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    ms = 1000 * np.median(times)
    print(f"authors' EdgeViT-XXS, PyTorch {torch.__version__} eager, train step batch {a.batch} 224: median "
          f"{ms:.0f} ms [{1000 * min(times):.0f}-{1000 * max(times):.0f}], {a.batch / ms * 1000:.1f} images/s, "
          f"{a.threads} threads, {platform.machine()}")


if __name__ == "__main__":
    main()
