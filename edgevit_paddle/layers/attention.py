"""Softmax attention written as a parameter-free leaf layer, so that ``paddle.flops`` can count its matmuls.

Leaf layers whose work ``paddle.flops`` does not know declare it themselves: ``count_macs(inputs, output)`` returns
their multiply-accumulates, and ``complexity.count_macs`` passes it to ``paddle.flops``.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import kernels


class Attend(nn.Layer):
    """softmax(q @ k^T * scale) @ v for q, k, v of shape [B, heads, N, head_dim].

    With ``channels_first`` q, k, v and the output are [B, heads, head_dim, N] (heads split off an NCHW map's
    channels) and the transposes are folded into the matmuls, so no tensor is transposed.
    """

    def __init__(self, scale: float, attn_drop: float = 0.0, channels_first: bool = False):
        super().__init__()
        self.scale = scale
        self.attn_drop = attn_drop
        self.channels_first = channels_first

    def forward(self, q, k, v):
        if self.channels_first:
            attn = paddle.matmul(q, k, transpose_x=True) * self.scale
        else:
            attn = paddle.matmul(q, k, transpose_y=True) * self.scale
        attn = F.softmax(attn, axis=-1)
        attn = F.dropout(attn, self.attn_drop, training=self.training)
        if self.channels_first:
            return paddle.matmul(v, attn, transpose_y=True)
        return paddle.matmul(attn, v)

    def count_macs(self, inputs, output) -> int:
        """Multiply-accumulates of the two attention matmuls."""
        q, k = inputs[0], inputs[1]
        if self.channels_first:
            b, h, d, n = q.shape
            m = k.shape[3]
        else:
            b, h, n, d = q.shape
            m = k.shape[2]
        return int(2 * b * h * n * m * d)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}, attn_drop={self.attn_drop}" + (", channels_first" if self.channels_first
                                                                         else "")


class PointwiseLinear(nn.Linear):
    """``nn.Linear`` (same parameters, weight [in, out]) applied along the channels of [B, C, N]: W^T @ x + b, one
    matmul and no transposes. Lets channels-first attention keep the original's qkv weights."""

    def forward(self, x):
        if kernels.products_usable(x):  # CPU dygraph: a 1x1 convolution with weight W^T
            w = self.weight.transpose([1, 0]).reshape([0, 0, 1, 1])
            return kernels.pointwise_conv2d(x.unsqueeze(-1), w, self.bias).squeeze(-1)
        y = paddle.matmul(self.weight, x, transpose_x=True)
        return y if self.bias is None else y + self.bias.unsqueeze(-1)

    def count_macs(self, inputs, output) -> int:
        """in x out per position."""
        x = inputs[0]
        return int(x.shape[0] * x.shape[2] * self.weight.shape[0] * self.weight.shape[1])


def split_heads(qkv: paddle.Tensor, num_heads: int, head_dim: int):
    """Split a fused qkv projection [B, N, 3 * heads * head_dim] into q, k, v of [B, heads, N, head_dim] (one reshape,
    transpose and split: 0 keeps the dynamic batch; the split's backward is one concat, and an export has no shape
    arithmetic)."""
    qkv = qkv.reshape([0, -1, 3 * num_heads, head_dim])
    # in CPU dygraph our kernel: Paddle copies a transposed 4-D view element by element
    qkv = kernels.swap12(qkv) if kernels.usable(qkv) else qkv.transpose([0, 2, 1, 3])
    q, k, v = paddle.split(qkv, 3, axis=1)
    return q, k, v


def split_heads_channels_first(qkv: paddle.Tensor, num_heads: int, head_dim: int):
    """Split a fused qkv projection [B, 3 * heads * head_dim, N] into q, k, v of [B, heads, head_dim, N] (a reshape
    and a split: the same channel order as ``split_heads``; no dimension computed, so an export has no shape
    arithmetic)."""
    q, k, v = paddle.split(qkv.reshape([0, 3 * num_heads, head_dim, -1]), 3, axis=1)
    return q, k, v


def merge_heads(x: paddle.Tensor) -> paddle.Tensor:
    """[B, heads, N, head_dim] -> [B, N, heads * head_dim]."""
    h, d = x.shape[1], x.shape[3]
    x = kernels.swap12(x) if kernels.usable(x) else x.transpose([0, 2, 1, 3])
    return x.reshape([0, -1, h * d])
