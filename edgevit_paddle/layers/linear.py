"""``paddle.nn.Linear`` whose product and bias run on our compiled kernel in dygraph on CPU.

Paddle's dygraph Linear is a matmul and a broadcast bias add; the add's backward sums the bias gradient on one thread
(in EdgeViT-XXS ln/linear training at batch 32 that backward took about 10% of the step). ``kernels.linear`` does the
product on oneDNN's sgemm with the bias added before it and summed over the cores after it. Same parameters, same
results to float32 rounding; under export (static graph), on GPUs and without the kernels, Paddle's own Linear runs.
"""
from __future__ import annotations

import paddle.nn as nn

from .. import kernels
from ..paddle_compat import static_as_is


class Linear(nn.Linear):
    """``paddle.nn.Linear`` (weight [in, out]) with the product and bias on our kernel in CPU dygraph."""

    @static_as_is
    def forward(self, x):
        if self.bias is not None and kernels.products_usable(x):
            return kernels.linear(x, self.weight, self.bias)
        return super().forward(x)
