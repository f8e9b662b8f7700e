"""The feed-forward network behind the ``ffn`` switch: two Linear layers on tokens or two 1x1 convs on NCHW."""
from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import paddle.nn as nn

from ..paddle_compat import static_as_is
from .activation import GELU
from .conv import Conv2D
from .linear import Linear
from .norm import check_choice

FFNS = ("conv", "linear")


class Mlp(nn.Layer):
    """fc1 -> [norm] -> act -> drop -> fc2 -> drop.

    Args:
        in_features: input channels.
        hidden_features: hidden channels (default: ``in_features``).
        out_features: output channels (default: ``in_features``).
        act_layer: activation class.
        drop: dropout rate after the activation and after fc2.
        norm_layer: optional norm over the hidden channels (ViTBNFFN's BatchNorm).
        use_conv: 1x1 convolutions on NCHW instead of Linear layers on tokens.
    """

    #: a BatchNorm over the hidden channels folds into ``fc1`` before it (see ``export.fold``)
    bn_folds = (("norm", "fc1", "out"),)

    def __init__(self, in_features: int, hidden_features: Optional[int] = None, out_features: Optional[int] = None,
                 act_layer: Callable = GELU, drop: float = 0.0, norm_layer: Optional[Callable] = None,
                 use_conv: bool = False):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        layer = partial(Conv2D, kernel_size=1) if use_conv else Linear
        self.fc1 = layer(in_features, hidden_features)
        self.norm = norm_layer(hidden_features) if norm_layer is not None else nn.Identity()
        self.act = act_layer()
        self.fc2 = layer(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    @static_as_is
    def forward(self, x):
        x = self.act(self.norm(self.fc1(x)))
        x = self.drop(x)
        x = self.drop(self.fc2(x))
        return x


def get_ffn_layer(name: str) -> Callable[..., Mlp]:
    """Return the FFN class for ``"conv"`` (1x1 convs, NCHW) or ``"linear"`` (Linear, tokens)."""
    check_choice("ffn", name, FFNS)
    return partial(Mlp, use_conv=(name == "conv"))
