"""The kernels as functions on Paddle tensors (each runs one custom operator; ``usable(x)`` decides whether to call
them)."""
from __future__ import annotations

from typing import Optional

import paddle

from ..paddle_compat import run_custom_op


def run(op: str, *args):
    """Run a custom operator on contiguous tensors (the kernels read them as dense arrays; a transposed view is
    copied first) and return its first output."""
    args = [a.contiguous() if isinstance(a, paddle.Tensor) and not a.is_contiguous() else a for a in args]
    out = run_custom_op(op, *args)
    return out[0] if isinstance(out, (list, tuple)) else out


def depthwise_conv2d(x: paddle.Tensor, weight: paddle.Tensor, padding: int) -> paddle.Tensor:
    """Stride-1 depthwise convolution, ``weight`` [C, 1, K, K], K = 2 * padding + 1 (no bias)."""
    return run("edgevit_dwconv", x, weight, int(padding))


def pointwise_conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: Optional[paddle.Tensor] = None) -> paddle.Tensor:
    """1x1 convolution, stride 1, no padding, one group (``weight`` [Co, Ci, 1, 1], ``bias`` [Co] or None), on
    oneDNN's sgemm."""
    if bias is None:
        return run("edgevit_pointwise_conv", x, weight)
    return run("edgevit_pointwise_conv_bias", x, weight, bias)


def linear(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """``x`` [..., Ci] @ ``weight`` [Ci, Co] + ``bias`` [Co] on oneDNN's sgemm."""
    return run("edgevit_linear", x, weight, bias)


def swap12(x: paddle.Tensor) -> paddle.Tensor:
    """``x.transpose([0, 2, 1, 3])`` of a 4-D tensor, contiguous (rows of the last dimension copied whole)."""
    return run("edgevit_swap12", x)


def subsample(x: paddle.Tensor, ratio: int) -> paddle.Tensor:
    """``x[:, :, ::ratio, ::ratio]`` of an NCHW tensor."""
    return run("edgevit_subsample", x, int(ratio))


def patchify(x: paddle.Tensor, patch: int) -> paddle.Tensor:
    """[N, C, H, W] -> [N, C * patch * patch, H // patch, W // patch]: channel ``(c * patch + i) * patch + j`` holds
    ``x[n, c, h * patch + i, w * patch + j]`` (a convolution with kernel = stride = ``patch`` is this and a 1x1
    product with the weight viewed as [Co, C * patch * patch, 1, 1])."""
    return run("edgevit_patchify", x, int(patch))


def bias_add(x: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """``x`` [N, C, ...] plus a per-channel ``bias`` [C]."""
    return run("edgevit_bias_add", x, bias)


def gelu(x: paddle.Tensor) -> paddle.Tensor:
    """Exact (erf) GELU."""
    return run("edgevit_gelu", x)


def group_norm(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, groups: int, eps: float) -> paddle.Tensor:
    """GroupNorm of an [N, C, ...] tensor with a per-channel affine."""
    return run("edgevit_group_norm", x, weight, bias, int(groups), float(eps))


def layer_norm(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, eps: float) -> paddle.Tensor:
    """LayerNorm over the last dimension with its affine."""
    return run("edgevit_layer_norm", x, weight, bias, float(eps))


def depthwise_conv2d_transpose(x: paddle.Tensor, weight: paddle.Tensor) -> paddle.Tensor:
    """Depthwise transposed convolution with kernel = stride (``weight`` [C, 1, R, R]; no bias)."""
    return run("edgevit_dwconv_t", x, weight)
