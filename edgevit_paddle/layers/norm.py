"""Normalisation layers behind the ``norm`` switch, for NCHW maps and for token (NLC) sequences.

``get_norm_layer(name, layout)`` is the one factory every model builds its norms through. It returns a
callable ``norm_layer(num_channels)``; blocks receive it and never look at the name.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Callable, Iterator

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import kernels
from ..errors import ModelError, did_you_mean
from ..paddle_compat import batch_norm_stats, norm_settings, static_as_is

NORMS = ("gn", "ln", "bn")
LAYOUTS = ("nchw", "nlc")


def count_norm_macs(layer: nn.Layer, inputs, output) -> int:
    """A norm as ``paddle.flops`` counts its BatchNorm: two operations per input element."""
    return int(2 * inputs[0].numel())


class LayerNorm(nn.LayerNorm):
    """``paddle.nn.LayerNorm`` over the last dimension, on our compiled kernel in dygraph on CPU
    (``edgevit_paddle.kernels``; Paddle's backward runs on one thread). Same parameters and numbers; an exported
    program keeps Paddle's ``layer_norm``."""

    count_macs = count_norm_macs

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.settings = norm_settings(self)

    @static_as_is
    def forward(self, x):
        return self.normalize_last_dim(x)

    def normalize_last_dim(self, x):
        # not ``super().forward``: dy2static resolves ``super()`` against the instance's class, so a subclass calling
        # this through ``super()`` would call itself (RecursionError at export)
        shape, eps = self.settings.normalized_shape, self.settings.epsilon
        if len(shape) == 1 and self.weight is not None and self.bias is not None and kernels.usable(x):
            return kernels.layer_norm(x, self.weight, self.bias, eps)
        return F.layer_norm(x, list(shape), self.weight, self.bias, eps)


class LayerNorm2d(LayerNorm):
    """LayerNorm over the channels of each pixel of an NCHW map (the original's token LayerNorm)."""

    @static_as_is
    def forward(self, x):
        return self.normalize_last_dim(x.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])


#: how a traced program writes GroupNorm (``group_norm_export_form``): ``onnx``, instance_norm over [N, groups, rest]
#: (what paddle2onnx converts correctly), or ``onednn``, layer_norm over the same view (Paddle Inference runs it with
#: oneDNN; its native instance_norm and the layout changes around it were a quarter of a gn model's forward;
#: paddle2onnx 2.1 cannot convert it)
GROUP_NORM_FORMS = ("onnx", "onednn")
_form = [GROUP_NORM_FORMS[0]]


@contextlib.contextmanager
def group_norm_export_form(form: str) -> Iterator[None]:
    """Trace GroupNorms in ``form`` (``GROUP_NORM_FORMS``) inside the block."""
    if form not in GROUP_NORM_FORMS:
        raise ValueError(f"unknown GroupNorm export form {form!r}")
    previous, _form[0] = _form[0], form
    try:
        yield
    finally:
        _form[0] = previous


def has_group_norm(model: nn.Layer) -> bool:
    """Whether ``model`` holds a GroupNorm (its traced program then depends on the form)."""
    return any(isinstance(layer, (GroupNorm2d, GroupNormTokens)) for layer in model.sublayers())


def group_norm_for_export(x, groups: int, epsilon: float, weight, bias):
    """GroupNorm of [N, C, ...] over the view [N, groups, rest], then the per-channel affine: the same numbers as
    Paddle's group_norm, in the form ``group_norm_export_form`` sets. The ``onnx`` form (instance_norm) because
    paddle2onnx 2.1 turns a PIR group_norm into an InstanceNormalization whose epsilon it reads from uninitialised
    memory (seen: -1.7e26, NaN outputs; found by the export check). Without ``weight`` and ``bias`` (an affine folded
    into the next layer: ``export.fold``) it only normalises."""
    grouped = x.reshape([0, groups, -1])
    if _form[0] == "onednn":  # normalized_shape's length sets the axis; its size is the view's (dynamic) last one
        y = F.layer_norm(grouped, normalized_shape=[-1], epsilon=epsilon)
    else:
        y = F.instance_norm(grouped, eps=epsilon)
    y = y.reshape(paddle.shape(x))
    if weight is None and bias is None:
        return y
    shape = [-1] + [1] * (len(x.shape) - 2)
    return y * weight.reshape(shape) + bias.reshape(shape)


class GroupNorm2d(nn.GroupNorm):
    """GroupNorm over an NCHW map, built from the channel count first like every other norm here; in dygraph on CPU
    it runs on our compiled kernel (``edgevit_paddle.kernels``; Paddle's backward runs on one thread)."""

    def __init__(self, num_channels: int, epsilon: float = 1e-5, num_groups: int = 1):
        super().__init__(num_groups, num_channels, epsilon=epsilon, data_format="NCHW")
        self.settings = norm_settings(self)

    @static_as_is
    def forward(self, x):
        groups, eps = self.settings.groups, self.settings.epsilon
        if self.weight is not None and self.bias is not None and kernels.usable(x):
            return kernels.group_norm(x, self.weight, self.bias, groups, eps)
        if paddle.in_dynamic_mode():
            return super().forward(x)
        return group_norm_for_export(x, groups, eps, self.weight, self.bias)

    count_macs = count_norm_macs


class GroupNormTokens(nn.GroupNorm):
    """GroupNorm over a token sequence [B, N, C] (statistics over tokens and the channels of a group)."""

    def __init__(self, num_channels: int, epsilon: float = 1e-5, num_groups: int = 1):
        super().__init__(num_groups, num_channels, epsilon=epsilon, data_format="NLC")
        self.settings = norm_settings(self)

    count_macs = count_norm_macs

    @static_as_is
    def forward(self, x):
        if paddle.in_dynamic_mode():
            return super().forward(x)
        s = self.settings
        y = group_norm_for_export(x.transpose([0, 2, 1]), s.groups, s.epsilon, self.weight, self.bias)
        return y.transpose([0, 2, 1])


class BatchNormTokens(nn.BatchNorm1D):
    """BatchNorm over the channels of a token sequence [B, N, C] (statistics over batch and tokens).

    Dygraph uses Paddle's NLC kernel. Under export the tokens are transposed to NCL around the op instead: Paddle
    Inference's oneDNN batch_norm (3.3.1) takes an NLC input's token axis for the channels and fails.
    """

    def __init__(self, num_features: int, epsilon: float = 1e-5, momentum: float = 0.9):
        super().__init__(num_features, momentum=momentum, epsilon=epsilon, data_format="NLC")

    count_macs = count_norm_macs

    @static_as_is
    def forward(self, x):
        if paddle.in_dynamic_mode():
            return super().forward(x)
        s = batch_norm_stats(self)
        y = F.batch_norm(x.transpose([0, 2, 1]), s.mean, s.variance, weight=self.weight, bias=self.bias,
                         training=self.training, momentum=s.momentum, epsilon=s.epsilon, data_format="NCL",
                         use_global_stats=s.use_global_stats)
        return y.transpose([0, 2, 1])


_NORM_CLASSES = {
    ("gn", "nchw"): GroupNorm2d,
    ("gn", "nlc"): GroupNormTokens,
    ("ln", "nchw"): LayerNorm2d,
    ("ln", "nlc"): LayerNorm,
    ("bn", "nchw"): nn.BatchNorm2D,
    ("bn", "nlc"): BatchNormTokens,
}


def check_choice(kind: str, value: str, choices) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a one-line ModelError listing them."""
    if value not in choices:
        raise ModelError(f"unknown {kind} '{value}'{did_you_mean(value, choices)}; valid choices: {', '.join(choices)}")
    return value


def get_norm_layer(name: str, layout: str = "nchw", eps: float = 1e-5, groups: int = 1) -> Callable[[int], nn.Layer]:
    """Return ``norm_layer(num_channels)`` for a norm name and tensor layout.

    Args:
        name: ``"gn"`` (GroupNorm), ``"ln"`` (LayerNorm over channels per position) or ``"bn"`` (BatchNorm over
            channels, statistics over batch and positions).
        layout: ``"nchw"`` for feature maps, ``"nlc"`` for token sequences.
        eps: epsilon of the norm.
        groups: number of groups for GroupNorm (1 = normalise over all channels and positions).
    """
    check_choice("norm", name, NORMS)
    check_choice("layout", layout, LAYOUTS)
    cls = _NORM_CLASSES[(name, layout)]
    if name == "gn":
        if groups < 1:
            raise ModelError(f"norm_groups must be >= 1, got {groups}")
        return partial(cls, epsilon=eps, num_groups=groups)
    return partial(cls, epsilon=eps)
