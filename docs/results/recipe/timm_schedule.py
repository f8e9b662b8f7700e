"""The learning rate of each epoch of the authors' recipe as DeiT's loop runs it (timm's CosineLRScheduler), the
reference for tests/test_schedule.py. Run in a separate venv with timm and torch (not a dependency of this project):

    python -m venv /tmp/timmvenv && /tmp/timmvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm
    (timm imports torchvision; PyPI's torchvision does not import beside torch 2.13.0)
    /tmp/timmvenv/bin/python docs/results/recipe/timm_schedule.py > docs/results/recipe/timm_schedule.txt

DeiT's main.py: ``lr_scheduler, _ = create_scheduler(args, optimizer)``, then
``for epoch in range(start_epoch, epochs): train_one_epoch(...); lr_scheduler.step(epoch)``; the EdgeViT authors'
defaults: sched cosine, epochs 300, warmup_epochs 5, warmup_lr 1e-6, min_lr 1e-5, lr 5e-4 x global batch / 512.
"""
import argparse

import timm
import torch
from timm.scheduler import create_scheduler

for global_batch in (512, 1024):
    lr = 5e-4 * global_batch / 512
    args = argparse.Namespace(sched="cosine", epochs=300, lr=lr, lr_noise=None, lr_noise_pct=0.67, lr_noise_std=1.0,
                              warmup_lr=1e-6, min_lr=1e-5, decay_epochs=30, warmup_epochs=5, cooldown_epochs=10,
                              patience_epochs=10, decay_rate=0.1, seed=0)
    opt = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=lr)
    sched, _ = create_scheduler(args, opt)
    used = []
    for epoch in range(args.epochs):
        used.append(opt.param_groups[0]["lr"])  # what this epoch trains with
        sched.step(epoch)
    print(f"# timm {timm.__version__}, global batch {global_batch} (lr {lr:g}): epoch (1-based) lr")
    for e in (1, 2, 3, 5, 6, 7, 8, 100, 150, 299, 300):
        print(f"{global_batch} {e} {used[e - 1]!r}")
