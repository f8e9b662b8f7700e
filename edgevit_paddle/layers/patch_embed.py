"""Patch embedding: a strided convolution (kernel = stride = patch size) followed by a norm."""
from __future__ import annotations

from typing import Callable, Optional

import paddle
import paddle.nn as nn

from ..errors import InputError
from ..paddle_compat import static_as_is
from .conv import Conv2D


class PatchEmbed(nn.Layer):
    """Conv(kernel=stride=patch_size) then a norm.

    Args:
        in_chans: input channels.
        embed_dim: output channels.
        patch_size: kernel size and stride.
        norm_layer: norm class for the output (an NCHW norm, or a token norm when ``flatten``).
        flatten: return tokens [B, N, C] instead of an NCHW map.
    """

    #: a BatchNorm ``norm`` folds into the conv before it (see ``export.fold``)
    bn_folds = (("norm", "proj", "out"),)

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, norm_layer: Optional[Callable] = None,
                 flatten: bool = False):
        super().__init__()
        self.patch_size = patch_size
        self.flatten = flatten
        self.proj = Conv2D(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer is not None else nn.Identity()

    @static_as_is
    def forward(self, x):
        x = self.proj(x)
        if self.flatten:
            x = x.reshape([0, 0, -1]).transpose([0, 2, 1])
        return self.norm(x)


def check_image_input(shape, in_chans: int, stride: int, model: str, dtype=None) -> None:
    """Raise a one-line InputError unless ``shape`` is [B, in_chans, H, W] with H and W multiples of ``stride``
    (and ``dtype``, when given, one the weights compute in: float32, or float16/bfloat16 under AMP).

    Dimensions that are unknown at export time (-1) are not checked.
    """
    if dtype is not None and dtype not in (paddle.float32, paddle.float16, paddle.bfloat16):
        raise InputError(f"{model} takes float32 images, got {str(dtype).replace('paddle.', '')}: cast them "
                             "first, e.g. x.astype('float32')")
    if len(shape) != 4:
        raise InputError(f"{model} expects a 4-D input [batch, {in_chans}, H, W], got shape {list(shape)}")
    c, h, w = shape[1], shape[2], shape[3]
    if c not in (-1, in_chans):
        raise InputError(f"{model} was built for {in_chans} input channels but got {c}; "
                         f"pass in_chans={c} when creating it, or convert the images to {in_chans} channels")
    bad = [(axis, d) for axis, d in (("height", h), ("width", w)) if d != -1 and (d < stride or d % stride)]
    if bad:
        axis, d = bad[0]
        lower = max(stride, d // stride * stride)
        options = sorted({lower, lower + stride} if d > stride else {stride})
        raise InputError(f"input size {h}x{w} is not valid for {model}: height and width must be multiples of "
                         f"{stride}; nearest valid {axis}: {' or '.join(map(str, options))}")
