"""The global sparse attention's sampler: every r-th row and column of an NCHW map.

The authors write it as ``AvgPool2d(kernel_size=1, stride=r)``, which picks the same values. In dygraph (training) it
is a strided slice; in a traced program (an export) it is that pooling, an op every runtime implements: ncnn has no
strided slice (``layer Tensor.slice not exists``), while MNN, ncnn, ONNX Runtime and OpenVINO all run a pooling.
"""
from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import kernels


class Subsample(nn.Layer):
    """``x[:, :, ::ratio, ::ratio]`` of an NCHW map (output side ``ceil(side / ratio)``)."""

    def __init__(self, ratio: int):
        super().__init__()
        self.ratio = int(ratio)

    def forward(self, x):
        r = self.ratio
        if paddle.in_dynamic_mode():  # on CPU our kernel: Paddle's strided-slice gradient runs on one thread
            return kernels.subsample(x, r) if kernels.usable(x) else x[:, :, ::r, ::r]
        return F.avg_pool2d(x, kernel_size=1, stride=r)  # exported: the same values, an op every runtime has

    def count_macs(self, inputs, output) -> int:
        """None: it only picks values."""
        return 0
