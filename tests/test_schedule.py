"""The authors' (DeiT's) learning-rate schedule against timm's numbers, for every ImageNet recipe config."""
import glob
import math
import os

import pytest
from conftest import ROOT

from edgevit_paddle.config import load_config
from edgevit_paddle.engine.optim import TimmCosineLR, build_lr

# /tmp/timmvenv/bin/python docs/results/recipe/timm_schedule.py (timm 1.0.31): the rate each epoch (1-based) trains
# with in DeiT's loop, global batch -> {epoch: lr}
TIMM = {
    512: {1: 1e-06, 2: 1e-06, 3: 0.0001008, 5: 0.00030040000000000004, 6: 0.0004002, 7: 0.0004996642360148705,
          8: 0.0004995165484649266, 100: 0.00038191661729641694, 150: 0.0002601308928714225,
          299: 1.0120892710395758e-05, 300: 1.0053732548662853e-05},
    1024: {1: 1e-06, 2: 1e-06, 3: 0.00020080000000000003, 5: 0.0006004000000000002, 6: 0.0008002000000000002,
           7: 0.000999321619703514, 8: 0.0009990232305719944, 100: 0.0007614233696396995,
           150: 0.0005153664978422617, 299: 1.0244252618962858e-05, 300: 1.0108561679951479e-05},
}
IMAGENET = sorted(glob.glob(os.path.join(ROOT, "configs", "edgevit", "*_imagenet.yaml")))


def epoch_rates(sched, epochs):
    """The rate of each epoch as the trainer runs a per-epoch schedule (stepped after each epoch)."""
    rates = []
    for _ in range(epochs):
        rates.append(sched())
        sched.step()
    return rates


@pytest.mark.parametrize("path", IMAGENET, ids=os.path.basename)
@pytest.mark.parametrize("global_batch", sorted(TIMM))
def test_imagenet_recipe_follows_timm_per_epoch(path, global_batch):
    cfg = load_config(path, [])
    sched, by_epoch = build_lr(cfg["Optimizer"], steps_per_epoch=2502, epochs=cfg["Global"]["epochs"],
                               global_batch=global_batch)
    assert by_epoch and isinstance(sched, TimmCosineLR)
    rates = epoch_rates(sched, cfg["Global"]["epochs"])
    for epoch, want in TIMM[global_batch].items():
        assert rates[epoch - 1] == pytest.approx(want, rel=1e-6), epoch


def test_resumed_schedule_continues_and_lag_zero_is_timms_curve():
    sched = TimmCosineLR(1e-3, t_initial=10, lr_min=1e-5, warmup_t=2, warmup_lr_init=1e-6)
    first = epoch_rates(sched, 4)
    again = TimmCosineLR(1e-3, t_initial=10, lr_min=1e-5, warmup_t=2, warmup_lr_init=1e-6)
    again.set_state_dict(sched.state_dict())
    rest = epoch_rates(again, 8)
    whole = epoch_rates(TimmCosineLR(1e-3, t_initial=10, lr_min=1e-5, warmup_t=2, warmup_lr_init=1e-6), 12)
    assert first + rest == whole and whole[-1] == 1e-5 < whole[-2]  # lr_min after the cycle (t = 10)
    plain = TimmCosineLR(1e-3, t_initial=10, lr_min=1e-5, warmup_t=2, warmup_lr_init=1e-6, lag=0)
    assert epoch_rates(plain, 3) == pytest.approx([1e-6, 1e-6 + (1e-3 - 1e-6) / 2,
                                                   1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 2 / 10))])
