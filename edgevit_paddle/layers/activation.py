"""GELU (exact, erf) that runs on our compiled kernel in dygraph on CPU (``edgevit_paddle.kernels``): Paddle 3.3.1's
CPU GELU backward runs on one thread. Same numbers to float32 rounding; under export the standard op is kept."""
from __future__ import annotations

import paddle.nn as nn

from .. import kernels
from ..paddle_compat import gelu_is_approximate, static_as_is


class GELU(nn.GELU):
    def __init__(self, approximate: bool = False, name=None):
        super().__init__(approximate=approximate, name=name)
        self.exact = not gelu_is_approximate(self)

    @static_as_is
    def forward(self, x):
        if self.exact and kernels.usable(x):
            return kernels.gelu(x)
        return super().forward(x)
