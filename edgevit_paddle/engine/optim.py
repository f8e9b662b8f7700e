"""Optimizer, learning-rate schedule and loss from the ``Optimizer`` and ``Loss`` config sections."""
from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..errors import ConfigError


def base_lr(opt_cfg: Dict[str, Any], global_batch: int) -> float:
    """``Optimizer.lr``, scaled by ``global_batch / Optimizer.lr_reference_batch`` when that is set (the linear
    scaling rule: DeiT's and the EdgeViT authors' ``lr 5e-4 x batch / 512``)."""
    ref = opt_cfg.get("lr_reference_batch")
    return opt_cfg["lr"] * global_batch / ref if ref else opt_cfg["lr"]


class TimmCosineLR(paddle.optimizer.lr.LRScheduler):
    """timm's ``CosineLRScheduler`` as the DeiT loop (the EdgeViT authors' ``main.py``) runs it: stepped once per
    epoch, the linear warm-up from ``warmup_lr_init`` *inside* the cosine (``warmup_prefix=False``: the cosine is
    measured from epoch 0, not from the warm-up's end), one cycle of ``t_initial`` epochs down to ``lr_min``, and
    ``lr_min`` after it.

    DeiT calls ``lr_scheduler.step(epoch)`` after training epoch ``epoch`` (0-based), so its epoch ``e`` trains at
    timm's rate for ``e - 1`` (``lag=1``), and the first epoch at the initial rate (``warmup_lr_init`` when there is a
    warm-up): the authors' run trains epochs 1 and 2 at 1e-6. ``lag=0`` gives timm's curve itself.

    Stepped per epoch (``by_epoch``); ``last_epoch`` is the 0-based epoch about to train. Checked against timm's
    numbers in ``tests/test_schedule.py`` (``docs/results/recipe/timm_schedule.py``).
    """

    def __init__(self, learning_rate: float, t_initial: int, lr_min: float = 0.0, warmup_t: int = 0,
                 warmup_lr_init: float = 0.0, lag: int = 1, last_epoch: int = -1, verbose: bool = False):
        self.t_initial, self.lr_min, self.warmup_t, self.warmup_lr_init, self.lag = \
            int(t_initial), float(lr_min), int(warmup_t), float(warmup_lr_init), int(lag)
        super().__init__(learning_rate, last_epoch, verbose)

    def timm_lr(self, t: int) -> float:
        """timm's ``_get_lr(t)`` for one cycle (``cycle_limit=1``, ``t_mul=1``, ``k_decay=1``, no noise)."""
        if t < self.warmup_t:
            return self.warmup_lr_init + t * (self.base_lr - self.warmup_lr_init) / self.warmup_t
        if t >= self.t_initial:
            return self.lr_min
        return self.lr_min + 0.5 * (self.base_lr - self.lr_min) * (1 + math.cos(math.pi * t / self.t_initial))

    def get_lr(self) -> float:
        t = self.last_epoch - self.lag
        if t < 0:  # before the loop's first step: what timm's constructor sets
            return self.warmup_lr_init if self.warmup_t else self.base_lr
        return self.timm_lr(t)


def build_lr(opt_cfg: Dict[str, Any], steps_per_epoch: int, epochs: int, global_batch: int = 0):
    """A ``paddle.optimizer.lr`` schedule (per step, or per epoch with ``Scheduler.by_epoch``) with linear warm-up;
    ``timm_cosine`` is the authors' (DeiT's) per-epoch schedule, ``TimmCosineLR``.

    Returns the scheduler (or a float for a constant rate without warm-up) and whether it steps per epoch.
    """
    sch = opt_cfg["Scheduler"]
    if sch["name"] == "timm_cosine":
        return TimmCosineLR(base_lr(opt_cfg, global_batch), t_initial=epochs, lr_min=sch["min_lr"],
                            warmup_t=int(round(sch["warmup_epochs"])), warmup_lr_init=sch["warmup_start_lr"]), True
    by_epoch = sch["by_epoch"]
    unit = 1 if by_epoch else steps_per_epoch
    total = max(1, epochs * unit)
    warmup = int(round(sch["warmup_epochs"] * unit))
    lr = base_lr(opt_cfg, global_batch)
    name = sch["name"]
    if name == "cosine":
        sched = paddle.optimizer.lr.CosineAnnealingDecay(lr, T_max=max(1, total - warmup), eta_min=sch["min_lr"])
    elif name == "step":
        sched = paddle.optimizer.lr.StepDecay(lr, step_size=sch["step_epochs"] * unit, gamma=sch["gamma"])
    else:
        sched = lr
    if warmup > 0:
        if lr <= sch["warmup_start_lr"]:
            raise ConfigError(f"the warm-up climbs from Optimizer.Scheduler.warmup_start_lr {sch['warmup_start_lr']:g} "
                              f"to the learning rate {lr:g}, which is not higher: raise Optimizer.lr, or set "
                              "Optimizer.Scheduler.warmup_epochs=0")
        sched = paddle.optimizer.lr.LinearWarmup(sched, warmup_steps=warmup, start_lr=sch["warmup_start_lr"],
                                                 end_lr=lr)
    return sched, by_epoch


def split_decay(model: nn.Layer, decay_norm_and_bias: bool = False):
    """(params with weight decay, params without): 1-D params (norms, biases) and position/class tokens go without."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.stop_gradient:
            continue
        if not decay_norm_and_bias and (p.ndim <= 1 or name in skip or name.split(".")[-1] in skip):
            no_decay.append(p)
        else:
            decay.append(p)
    return decay, no_decay


def set_backbone_lr_mult(model: nn.Layer, mult: float) -> None:
    """Every trainable parameter but the classifier's (``model.get_classifier()``) learns at ``mult`` times the rate:
    Paddle's per-parameter learning rate (``ParamAttr(learning_rate=...)``), which every optimizer applies."""
    head = {id(p) for p in model.get_classifier().parameters()}
    for p in model.parameters():
        p.optimize_attr["learning_rate"] = 1.0 if id(p) in head else float(mult)


def build_optimizer(opt_cfg: Dict[str, Any], model: nn.Layer, steps_per_epoch: int, epochs: int,
                    global_batch: int = 0) -> Tuple[paddle.optimizer.Optimizer, bool]:
    """The optimizer with its LR schedule; returns it and whether the schedule steps per epoch.

    Weight decay is kept off norms, biases and position tokens: AdamW through ``apply_decay_param_fun``, the
    L2-regularised optimizers through a zero per-parameter regulariser (``paddle.Model`` cannot take param groups).
    ``global_batch`` (images per step over all processes) scales the rate when ``Optimizer.lr_reference_batch`` is
    set; ``Optimizer.backbone_lr_mult`` scales the rate of everything but the head.
    """
    lr, by_epoch = build_lr(opt_cfg, steps_per_epoch, epochs, global_batch)
    set_backbone_lr_mult(model, opt_cfg.get("backbone_lr_mult", 1.0))
    decay, no_decay = split_decay(model, opt_cfg["decay_norm_and_bias"])
    params = decay + no_decay
    wd = opt_cfg["weight_decay"]
    clip = nn.ClipGradByGlobalNorm(opt_cfg["grad_clip"]) if opt_cfg["grad_clip"] else None
    name = opt_cfg["name"]
    if name == "AdamW":
        decay_names = {p.name for p in decay}
        return paddle.optimizer.AdamW(learning_rate=lr, parameters=params, beta1=opt_cfg["beta1"],
                                      beta2=opt_cfg["beta2"], weight_decay=wd, grad_clip=clip,
                                      apply_decay_param_fun=lambda n: n in decay_names), by_epoch
    for p in no_decay:
        p.regularizer = paddle.regularizer.L2Decay(0.0)
    reg = paddle.regularizer.L2Decay(wd) if wd > 0 else None
    if name == "Adam":
        opt = paddle.optimizer.Adam(learning_rate=lr, parameters=params, beta1=opt_cfg["beta1"],
                                    beta2=opt_cfg["beta2"], weight_decay=reg, grad_clip=clip)
    elif name == "Momentum":
        opt = paddle.optimizer.Momentum(learning_rate=lr, momentum=opt_cfg["momentum"], parameters=params,
                                        weight_decay=reg, grad_clip=clip)
    else:
        opt = paddle.optimizer.SGD(learning_rate=lr, parameters=params, weight_decay=reg, grad_clip=clip)
    return opt, by_epoch


class CrossEntropy(nn.Layer):
    """Cross-entropy on integer labels [N, 1] with optional label smoothing, or on soft targets [N, classes] (what
    Mixup/CutMix produce, smoothing already in them: timm's ``SoftTargetCrossEntropy``).

    (``paddle.nn.CrossEntropyLoss(label_smoothing=...)`` has no CPU kernel for integer labels in Paddle 3.3.)
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits, label):
        if label.dtype in (paddle.float32, paddle.float64) and label.shape[-1] == logits.shape[-1]:
            return F.cross_entropy(logits, label.astype(logits.dtype), soft_label=True)
        if self.label_smoothing <= 0:
            return F.cross_entropy(logits, label)
        target = F.label_smooth(F.one_hot(label.reshape([-1]), logits.shape[-1]), epsilon=self.label_smoothing)
        return F.cross_entropy(logits, target, soft_label=True)


def build_loss(loss_cfg: Dict[str, Any]) -> nn.Layer:
    return CrossEntropy(loss_cfg["label_smoothing"])


class TopKAccuracy(paddle.metric.Accuracy):
    """``paddle.metric.Accuracy`` whose results are always named ``acc_top<k>`` (Paddle names a single k just
    ``acc``, which left runs with ``Metric.topk: [1]`` or one class without a top-1 or a best checkpoint)."""

    def __init__(self, topk=(1,)):
        # Paddle names the results ``<name>_top<k>`` for several k, and ``<name>`` for k = 1 alone
        super().__init__(topk=topk, name="acc_top1" if tuple(topk) == (1,) else "acc")


def build_metric(metric_cfg: Dict[str, Any], num_classes: int) -> TopKAccuracy:
    """Top-k accuracy for ``Metric.topk``, with top-1 always (it picks the best checkpoint) and k capped at the class
    count."""
    return TopKAccuracy(topk=tuple(sorted({1} | {min(k, num_classes) for k in metric_cfg["topk"]})))

