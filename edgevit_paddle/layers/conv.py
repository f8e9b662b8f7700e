"""Convolutions whose bias add takes Paddle's fast path in dygraph.

Paddle's dygraph ``conv2d`` adds its bias as ``[N, C, H, W] + [1, C, 1, 1]``, a broadcast that hits a slow
elementwise kernel on CPU: in an EdgeViT-XXS forward at batch 8 those adds were half of all the time (Paddle's
profiler: ``add`` 51.6%). Adding the same bias shaped ``[C, 1, 1]`` takes the fast kernel. The numbers are the same
(one float32 add per element). Under export (static graph) the standard op is kept, so Paddle Inference still fuses
conv + bias. The layers keep Paddle's class names, parameter names and ``paddle.flops`` counting.

In dygraph on CPU (float32), depthwise convolutions (stride 1, "same" padding) and depthwise transposed convolutions
with kernel = stride run on our compiled kernels (``edgevit_paddle.kernels``) when they are available: Paddle's run
on one thread with an im2col per channel (10x slower forward at EdgeViT's shapes). So do 1x1 convolutions (stride 1,
no padding, one group), as per-sample matrix products on oneDNN's sgemm: Paddle's CPU conv2d took 3-4x longer
forward and backward at EdgeViT's stage-1 shapes. A convolution whose kernel equals its stride (the patch
embeddings) is patches to channels (``kernels.patchify``) and that product.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import kernels
from ..paddle_compat import conv2d_without_bias, conv_settings, static_as_is


def _add_bias(out, bias):
    """``out`` [N, C, H, W] plus a per-channel bias (dygraph): our kernel on CPU (its gradient sums over the cores),
    else the add shaped ``[C, 1, 1]``."""
    if bias is None:
        return out
    if kernels.usable(out):
        return kernels.bias_add(out, bias)
    return out + bias.reshape([-1, 1, 1])


class Conv2D(nn.Conv2D):
    """``paddle.nn.Conv2D`` with a fast dygraph bias add (same parameters, same results)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        s = self.settings = conv_settings(self)
        k, pad = s.kernel_size, s.updated_padding
        # a depthwise, stride-1, "same"-padded, odd square kernel: what ``kernels.depthwise_conv2d`` computes
        self.compiled_depthwise = s.depthwise and k[0] == k[1] and k[0] % 2 == 1 and s.stride == [1, 1] \
            and s.dilation == [1, 1] and isinstance(pad, (list, tuple)) and list(pad) == [k[0] // 2] * 2 \
            and s.padding_mode == "zeros" and s.data_format == "NCHW"
        dense = s.dilation == [1, 1] and s.groups == 1 and isinstance(pad, (list, tuple)) and list(pad) == [0, 0] \
            and s.data_format == "NCHW"
        # a 1x1 convolution as one matrix product per sample: what ``kernels.pointwise_conv2d`` computes
        self.compiled_pointwise = dense and k == [1, 1] and s.stride == [1, 1]
        # kernel = stride (a patch embedding): patches to channels, then that product
        self.compiled_patches = dense and k[0] == k[1] > 1 and s.stride == k
        # Paddle's conv then our bias add: zero padding in NCHW (other modes pad in ``forward``)
        self.split_bias = s.padding_mode == "zeros" and s.data_format == "NCHW"

    @static_as_is
    def forward(self, x):
        if self.compiled_depthwise and kernels.usable(x):
            out = kernels.depthwise_conv2d(x, self.weight, self.settings.kernel_size[0] // 2)
            return _add_bias(out, self.bias)
        if self.compiled_pointwise and kernels.products_usable(x):
            return kernels.pointwise_conv2d(x, self.weight, self.bias)
        if self.compiled_patches and kernels.products_usable(x):
            w = self.weight.reshape([0, -1, 1, 1])
            return kernels.pointwise_conv2d(kernels.patchify(x, self.settings.kernel_size[0]), w, self.bias)
        if self.bias is None or not self.split_bias or not paddle.in_dynamic_mode():
            return super().forward(x)
        return _add_bias(conv2d_without_bias(self, x), self.bias)


class Conv2DTranspose(nn.Conv2DTranspose):
    """``paddle.nn.Conv2DTranspose`` with a fast dygraph bias add (same parameters, same results)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        s = self.settings = conv_settings(self)
        k = s.kernel_size
        # depthwise with kernel = stride, no padding: what ``kernels.depthwise_conv2d_transpose`` computes
        self.compiled_depthwise = s.depthwise and k[0] == k[1] and k == s.stride and s.dilation == [1, 1] \
            and s.padding in (0, [0, 0], (0, 0)) and self.output_padding in (0, None) and s.data_format == "NCHW"

    @static_as_is
    def forward(self, x, output_size=None):
        s = self.settings
        if output_size is None and self.compiled_depthwise and kernels.usable(x):
            out = kernels.depthwise_conv2d_transpose(x, self.weight)
            return _add_bias(out, self.bias)
        if self.bias is None or output_size is not None or s.data_format != "NCHW" or not paddle.in_dynamic_mode():
            return super().forward(x, output_size)
        out = F.conv2d_transpose(x, self.weight, bias=None, padding=s.padding, output_padding=self.output_padding,
                                 stride=s.stride, dilation=s.dilation, groups=s.groups, data_format=s.data_format)
        return _add_bias(out, self.bias)
