"""Weight initialisation shared by the models.

The EdgeViT authors initialise Linear layers with a truncated normal (std 0.02) and zero bias, LayerNorm with
ones/zeros, and leave convolutions and BatchNorm at PyTorch's defaults. Paddle's defaults differ for
convolutions (Paddle: normal with std sqrt(2 / fan_in) and zero bias; PyTorch: uniform with bound
1 / sqrt(fan_in) for weight and bias), so they are set explicitly here.
"""
from __future__ import annotations

import math

import paddle.nn as nn
from paddle.nn.initializer import Constant, TruncatedNormal, Uniform

trunc_normal_ = TruncatedNormal(mean=0.0, std=0.02, a=-2.0, b=2.0)
zeros_ = Constant(0.0)
ones_ = Constant(1.0)

#: attribute that marks a 1x1 conv standing in for a Linear layer: it is initialised like the Linear.
INIT_AS_LINEAR = "_init_as_linear"


def mark_as_linear(*layers: nn.Layer) -> None:
    """Mark 1x1 convolutions that replace Linear layers so that they get the Linear initialisation."""
    for layer in layers:
        setattr(layer, INIT_AS_LINEAR, True)


def _fan_in(layer: nn.Layer) -> int:
    w = layer.weight.shape
    receptive = int(math.prod(w[2:]))
    # PyTorch takes fan_in from dim 1 for both Conv ([out, in/g, k, k]) and ConvTranspose ([in, out/g, k, k]).
    return w[1] * receptive


def init_torch_style(layer: nn.Layer) -> None:
    """Initialise one layer as the EdgeViT authors' PyTorch code ends up doing."""
    if isinstance(layer, nn.Linear) or getattr(layer, INIT_AS_LINEAR, False):
        trunc_normal_(layer.weight)
        if layer.bias is not None:
            zeros_(layer.bias)
    elif isinstance(layer, (nn.Conv2D, nn.Conv2DTranspose)):
        bound = 1.0 / math.sqrt(_fan_in(layer))
        Uniform(-bound, bound)(layer.weight)
        if layer.bias is not None:
            Uniform(-bound, bound)(layer.bias)
    elif isinstance(layer, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1D, nn.BatchNorm2D)):
        if layer.weight is not None:
            ones_(layer.weight)
        if layer.bias is not None:
            zeros_(layer.bias)
