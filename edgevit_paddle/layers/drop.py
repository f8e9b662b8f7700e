"""Stochastic depth (DropPath)."""
from __future__ import annotations

import paddle
import paddle.nn as nn


def drop_path(x: paddle.Tensor, drop_prob: float = 0.0, training: bool = False) -> paddle.Tensor:
    """Drop whole samples of a residual branch with probability ``drop_prob``, rescaling the kept ones."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    mask = paddle.floor(keep_prob + paddle.rand(shape, dtype=x.dtype))
    return x / keep_prob * mask


class DropPath(nn.Layer):
    """Stochastic depth per sample, applied to a residual branch."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
