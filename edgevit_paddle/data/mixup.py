"""Batch Mixup and CutMix with soft targets, as timm's ``Mixup`` does them for DeiT and the EdgeViT authors (batch
mode: one draw per batch, each image mixed with the batch's mirror image ``x.flip(0)``).

With probability ``prob`` a batch is mixed; when both alphas are set, CutMix is chosen with ``switch_prob`` and Mixup
otherwise. Mixup: ``x = lam * x + (1 - lam) * x.flip(0)``, ``lam ~ Beta(mixup_alpha, mixup_alpha)``. CutMix: a box of
area ``1 - lam`` (``lam ~ Beta(cutmix_alpha, cutmix_alpha)``) is pasted from ``x.flip(0)``, and ``lam`` is corrected to
the box as clipped by the image border. Targets: label-smoothed one-hots mixed with the same ``lam``, so every row
sums to 1. The draws come from the ``numpy.random.RandomState`` passed in (the trainer seeds it from the run seed,
the absolute epoch and the step, so a resumed run mixes exactly as the uninterrupted one).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import paddle
import paddle.nn.functional as F


class Mixup:
    def __init__(self, num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0,
                 switch_prob: float = 0.5, label_smoothing: float = 0.0):
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.prob, self.switch_prob, self.label_smoothing = float(prob), float(switch_prob), float(label_smoothing)

    @classmethod
    def from_config(cls, cfg: Dict[str, Any], num_classes: int) -> Optional["Mixup"]:
        """The ``Mixup`` of a config (its label smoothing from ``Loss``), or None when both alphas are 0."""
        m = cfg["Mixup"]
        if m["mixup_alpha"] <= 0 and m["cutmix_alpha"] <= 0:
            return None
        return cls(num_classes, m["mixup_alpha"], m["cutmix_alpha"], m["prob"], m["switch_prob"],
                   cfg["Loss"]["label_smoothing"])

    def params(self, rng: np.random.RandomState) -> Tuple[float, bool]:
        """(lam, use CutMix) for one batch; lam = 1 leaves the batch as it is."""
        if rng.rand() >= self.prob:
            return 1.0, False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            cutmix = bool(rng.rand() < self.switch_prob)
        else:
            cutmix = self.cutmix_alpha > 0
        alpha = self.cutmix_alpha if cutmix else self.mixup_alpha
        return float(rng.beta(alpha, alpha)), cutmix

    @staticmethod
    def box(h: int, w: int, lam: float, rng: np.random.RandomState) -> Tuple[int, int, int, int]:
        """A CutMix box (top, bottom, left, right) of about ``1 - lam`` of the image, centred at random, clipped."""
        ratio = np.sqrt(1.0 - lam)
        cut_h, cut_w = int(h * ratio), int(w * ratio)
        cy, cx = rng.randint(0, h), rng.randint(0, w)
        return (int(np.clip(cy - cut_h // 2, 0, h)), int(np.clip(cy + cut_h // 2, 0, h)),
                int(np.clip(cx - cut_w // 2, 0, w)), int(np.clip(cx + cut_w // 2, 0, w)))

    def targets(self, label: paddle.Tensor, lam: float) -> paddle.Tensor:
        """Smoothed one-hot targets of ``label`` mixed with those of ``label.flip(0)``: [N, classes] float32."""
        off = self.label_smoothing / self.num_classes
        one_hot = F.one_hot(label.reshape([-1]).astype("int64"), self.num_classes)
        y = one_hot * (1.0 - self.label_smoothing) + off
        return (y * lam + y.flip(0) * (1.0 - lam)).astype("float32")

    def __call__(self, x: paddle.Tensor, label: paddle.Tensor, rng: np.random.RandomState
                 ) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """The mixed batch and its soft targets."""
        lam, cutmix = self.params(rng)
        if lam < 1.0:
            other = x.flip(0)
            if cutmix:
                h, w = int(x.shape[2]), int(x.shape[3])
                top, bottom, left, right = self.box(h, w, lam, rng)
                if bottom > top and right > left:  # an empty box (lam near 1) pastes nothing
                    x = x.clone()
                    x[:, :, top:bottom, left:right] = other[:, :, top:bottom, left:right]
                lam = 1.0 - (bottom - top) * (right - left) / float(h * w)
            else:
                x = x * lam + other * (1.0 - lam)
        return x, self.targets(label, lam)
