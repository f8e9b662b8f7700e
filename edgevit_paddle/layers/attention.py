"""Softmax attention written as a parameter-free leaf layer, so that ``paddle.flops`` can count its matmuls."""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class Attend(nn.Layer):
    """softmax(q @ k^T * scale) @ v for q, k, v of shape [B, heads, N, head_dim]."""

    def __init__(self, scale: float, attn_drop: float = 0.0):
        super().__init__()
        self.scale = scale
        self.attn_drop = attn_drop

    def forward(self, q, k, v):
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale
        attn = F.softmax(attn, axis=-1)
        attn = F.dropout(attn, self.attn_drop, training=self.training)
        return paddle.matmul(attn, v)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}, attn_drop={self.attn_drop}"


def count_attend_macs(layer: Attend, inputs, output) -> None:
    """``paddle.flops`` hook: multiply-accumulates of the two attention matmuls."""
    q, k = inputs[0], inputs[1]
    b, h, n, d = q.shape
    m = k.shape[2]
    layer.total_ops += int(2 * b * h * n * m * d)


def split_heads(qkv: paddle.Tensor, num_heads: int, head_dim: int):
    """Split a fused qkv projection [B, N, 3 * heads * head_dim] into q, k, v of [B, heads, N, head_dim]."""
    qkv = qkv.reshape([0, -1, 3, num_heads, head_dim]).transpose([2, 0, 3, 1, 4])  # 0: keep the (dynamic) batch
    q, k, v = paddle.unbind(qkv, axis=0)  # its backward is one stack; three slices' would zero-fill three times
    return q, k, v


def merge_heads(x: paddle.Tensor) -> paddle.Tensor:
    """[B, heads, N, head_dim] -> [B, N, heads * head_dim]."""
    h, d = x.shape[1], x.shape[3]
    return x.transpose([0, 2, 1, 3]).reshape([0, -1, h * d])
