"""Norm folding for export, applying the folds each layer declares for itself.

A layer that owns a norm sitting directly next to a conv or Linear layer (nothing non-linear in between) declares it
as a class attribute, in its own file::

    bn_folds = (("norm1", "conv1", "in"), ...)   # (norm's path, target layer's path, where)

``"in"``: the norm feeds the target's input; ``"out"``: it normalises the target's output. Paths are attribute paths
below the declaring layer. ``fold_batchnorm`` walks the model, and for every layer whose class (or a base class)
declares folds, folds each norm it finds there into its target's weights:

- a BatchNorm (eval mode: a constant per-channel affine) wholly, in either direction; it becomes ``Identity``;
- a GroupNorm's per-channel affine (weight, bias) into a target it feeds ("in"); what is left normalises only (no
  weight or bias), which the export writes as one normalisation with no multiply and add after it. GroupNorm's
  statistics are of each input, so it cannot fold "out", nor vanish. LayerNorm stays as it is (ONNX Runtime runs it
  with its affine as one fused kernel).

A fold that is not exact is skipped (an "in" fold into a padded or grouped conv would see the shift differently at
the borders), so a declaration can never change what the model computes.

What the models declare: EdgeViT's LocalAgg BatchNorms into the following 1x1 convs and the final BatchNorm into the
head (every variant); with ``norm="bn"`` also the patch-embedding norms into the patch convs, SelfAttn's pre-norms
into ``qkv``/``mlp.fc1`` and LocalProp's norm into the output projection; ViTBN's patch, pre- and final norms;
ViTBNFFN's FFN BatchNorm into ``fc1``.
"""
from __future__ import annotations

import copy
from typing import List, Optional, Tuple

import numpy as np
import paddle.nn as nn

from ..paddle_compat import BatchNormBase, batch_norm_stats, conv_settings, is_batch_norm, norm_settings


def sublayer_at(layer: nn.Layer, path: str) -> Optional[nn.Layer]:
    """The layer at the attribute path ``path`` (e.g. ``attn.qkv``) below ``layer``, or None."""
    for part in path.split("."):
        layer = getattr(layer, part, None)
        if layer is None:
            return None
    return layer


def _set(layer: nn.Layer, path: str, value: nn.Layer) -> None:
    *parents, last = path.split(".")
    for part in parents:
        layer = getattr(layer, part)
    setattr(layer, last, value)


def _bn_affine(bn: BatchNormBase) -> Tuple[np.ndarray, np.ndarray]:
    """BatchNorm in eval mode as y = a * x + b per channel."""
    stats = batch_norm_stats(bn)
    var = stats.variance.numpy().astype(np.float64)
    mean = stats.mean.numpy().astype(np.float64)
    gamma = bn.weight.numpy().astype(np.float64) if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.numpy().astype(np.float64) if bn.bias is not None else np.zeros_like(mean)
    a = gamma / np.sqrt(var + stats.epsilon)
    return a, beta - mean * a


def _ensure_bias(layer: nn.Layer, size: int) -> None:
    if layer.bias is None:
        layer.bias = layer.create_parameter([size], is_bias=True, default_initializer=nn.initializer.Constant(0.0))


def _group_norm_affine(norm: nn.GroupNorm) -> Tuple[np.ndarray, np.ndarray]:
    channels = norm_settings(norm).channels
    gamma = norm.weight.numpy().astype(np.float64) if norm.weight is not None else np.ones(channels)
    beta = norm.bias.numpy().astype(np.float64) if norm.bias is not None else np.zeros(channels)
    return gamma, beta


def _fold(a: np.ndarray, b: np.ndarray, target: nn.Layer, where: str) -> bool:
    """Fold y = a * x + b (per channel) into ``target``'s weights: before its input ("in") or after its output."""
    w = target.weight.numpy().astype(np.float64)
    if isinstance(target, nn.Linear):  # Paddle Linear weight: [in, out]
        out_features = w.shape[1]
        _ensure_bias(target, out_features)
        c = target.bias.numpy().astype(np.float64)
        if where == "in":
            new_w, new_c = a[:, None] * w, c + b @ w
        else:
            new_w, new_c = w * a[None, :], a * c + b
    elif isinstance(target, nn.Conv2D):  # weight [out, in/groups, kh, kw]
        conv = conv_settings(target)
        if where == "in" and (conv.groups != 1 or any(k != 1 for k in conv.kernel_size)):
            return False  # a padded or grouped conv would see the shift differently at the borders
        _ensure_bias(target, w.shape[0])
        c = target.bias.numpy().astype(np.float64)
        if where == "in":
            new_w = w * a[None, :, None, None]
            new_c = c + np.einsum("oi,i->o", w[:, :, 0, 0], b)
        else:
            new_w, new_c = w * a[:, None, None, None], a * c + b
    else:
        return False
    target.weight.set_value(new_w.astype(np.float32))
    target.bias.set_value(new_c.astype(np.float32))
    return True


def fold_batchnorm(model: nn.Layer, inplace: bool = False) -> nn.Layer:
    """An eval-mode model equal to ``model`` with every norm its layers declare as foldable folded: BatchNorms
    away, GroupNorms' affines into the layer they feed.

    The folded model's ``folded_bn`` attribute lists the BatchNorms that were folded, ``folded_affine`` the
    GroupNorms whose affine was.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    folded, folded_affine = [], []
    for name, layer in [("", model)] + list(model.named_sublayers()):
        for norm_path, target_path, where in getattr(type(layer), "bn_folds", ()):
            norm, target = sublayer_at(layer, norm_path), sublayer_at(layer, target_path)
            path = f"{name + '.' if name else ''}{norm_path}"
            if target is None:
                continue
            if is_batch_norm(norm) and _fold(*_bn_affine(norm), target, where):
                _set(layer, norm_path, nn.Identity())
                folded.append(path)
            elif (isinstance(norm, nn.GroupNorm) and where == "in" and norm.weight is not None
                  and _fold(*_group_norm_affine(norm), target, where)):
                norm.weight, norm.bias = None, None
                folded_affine.append(path)
    model.folded_bn, model.folded_affine = folded, folded_affine
    return model


def remaining_batchnorms(model: nn.Layer) -> List[str]:
    return [n for n, m in model.named_sublayers() if is_batch_norm(m)]
