"""Convolutions whose bias add takes Paddle's fast path in dygraph.

Paddle's dygraph ``conv2d`` adds its bias as ``[N, C, H, W] + [1, C, 1, 1]``, a broadcast that hits a slow
elementwise kernel on CPU: in an EdgeViT-XXS forward at batch 8 those adds were half of all the time (Paddle's
profiler: ``add`` 51.6%). Adding the same bias shaped ``[C, 1, 1]`` takes the fast kernel. The numbers are the same
(one float32 add per element). Under export (static graph) the standard op is kept, so Paddle Inference still fuses
conv + bias. The layers keep Paddle's class names, parameter names and ``paddle.flops`` counting.

In dygraph on CPU (float32), depthwise convolutions (stride 1, "same" padding) and depthwise transposed convolutions
with kernel = stride run on our compiled kernels (``edgevit_paddle.kernels``) when they are available: Paddle's run
on one thread with an im2col per channel (10x slower forward at EdgeViT's shapes).
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.hapi import dynamic_flops

from .. import kernels


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

    def _compiled_depthwise(self) -> bool:
        """A depthwise, stride-1, "same"-padded, odd square kernel: what ``kernels.depthwise_conv2d`` computes."""
        k = self._kernel_size
        pad = self._updated_padding
        return self._groups == self._in_channels == self._out_channels and k[0] == k[1] and k[0] % 2 == 1 \
            and list(self._stride) == [1, 1] and list(self._dilation) == [1, 1] \
            and isinstance(pad, (list, tuple)) and list(pad) == [k[0] // 2] * 2

    def forward(self, x):
        if self._padding_mode == "zeros" and self._data_format == "NCHW" and self._compiled_depthwise() \
                and kernels.usable(x):
            out = kernels.depthwise_conv2d(x, self.weight, self._kernel_size[0] // 2)
            return _add_bias(out, self.bias)
        if self.bias is None or self._padding_mode != "zeros" or self._data_format != "NCHW" \
                or not paddle.in_dynamic_mode():
            return super().forward(x)
        out = F.conv._conv_nd(x, self.weight, bias=None, stride=self._stride, padding=self._updated_padding,
                              padding_algorithm=self._padding_algorithm, dilation=self._dilation, groups=self._groups,
                              data_format=self._data_format, channel_dim=self._channel_dim, op_type=self._op_type,
                              use_cudnn=self._use_cudnn)
        return _add_bias(out, self.bias)


class Conv2DTranspose(nn.Conv2DTranspose):
    """``paddle.nn.Conv2DTranspose`` with a fast dygraph bias add (same parameters, same results)."""

    def _compiled_depthwise(self) -> bool:
        """Depthwise with kernel = stride, no padding: what ``kernels.depthwise_conv2d_transpose`` computes."""
        k, s = list(self._kernel_size), list(self._stride)
        return self._groups == self._in_channels == self._out_channels and k[0] == k[1] and k == s \
            and list(self._dilation) == [1, 1] and self._padding in (0, [0, 0], (0, 0)) \
            and self.output_padding in (0, None)

    def forward(self, x, output_size=None):
        if output_size is None and self._data_format == "NCHW" and self._compiled_depthwise() and kernels.usable(x):
            out = kernels.depthwise_conv2d_transpose(x, self.weight)
            return _add_bias(out, self.bias)
        if self.bias is None or output_size is not None or self._data_format != "NCHW" \
                or not paddle.in_dynamic_mode():
            return super().forward(x, output_size)
        out = F.conv2d_transpose(x, self.weight, bias=None, padding=self._padding,
                                 output_padding=self.output_padding, stride=self._stride, dilation=self._dilation,
                                 groups=self._groups, data_format=self._data_format)
        return _add_bias(out, self.bias)


# paddle.flops matches layer types exactly: count ours as it counts its own convolutions.
dynamic_flops.register_hooks.setdefault(Conv2D, dynamic_flops.count_convNd)
dynamic_flops.register_hooks.setdefault(Conv2DTranspose, dynamic_flops.count_convNd)
