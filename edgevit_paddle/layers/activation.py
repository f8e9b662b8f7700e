"""GELU (exact, erf) that runs on our compiled kernel in dygraph on CPU (``edgevit_paddle.kernels``): Paddle 3.3.1's
CPU GELU backward runs on one thread. Same numbers to float32 rounding; under export the standard op is kept."""
from __future__ import annotations

import paddle.nn as nn
from paddle.hapi import dynamic_flops

from .. import kernels


class GELU(nn.GELU):
    def forward(self, x):
        if not self._approximate and kernels.usable(x):
            return kernels.gelu(x)
        return super().forward(x)


if nn.GELU in dynamic_flops.register_hooks:  # paddle.flops matches layer types exactly
    dynamic_flops.register_hooks.setdefault(GELU, dynamic_flops.register_hooks[nn.GELU])
