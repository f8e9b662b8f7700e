"""EdgeViT: light-weight vision transformers with local-global-local (LGL) bottlenecks.

Paper: "EdgeViTs: Competing Light-weight CNNs on Mobile Devices with Vision Transformers", Pan et al., ECCV 2022,
https://arxiv.org/abs/2205.03436 (authors' code: github.com/saic-fi/edgevit).

Two switches on top of the authors' architecture:

- ``norm``: ``"gn"`` (GroupNorm, ``norm_groups`` groups), ``"ln"`` (LayerNorm over channels per position, as the
  authors) or ``"bn"`` (BatchNorm over channels). It replaces exactly the norms the original has as LayerNorm (patch
  embeddings, SelfAttn's two pre-norms, LocalProp's norm). The original's BatchNorms (LocalAgg, final) stay.
- ``ffn``: ``"conv"`` (two 1x1 convs on NCHW) or ``"linear"`` (two Linear layers on tokens, as the authors).

``norm="ln", ffn="linear"`` is numerically the authors' model (checked against their outputs in the tests).
Our default, the reproduction's "improved" model, is ``norm="gn", ffn="conv"``: with the conv FFN the SelfAttn block
stays in NCHW except inside attention (its output projection is then a 1x1 conv, initialised like the Linear it
stands for). Differences from the authors' code: the sampler (average pool with kernel 1, stride r) is a strided
slice in dygraph, the same values (``layers/subsample.py``: exported, it is the pooling); attention matmuls sit in a
leaf layer so ``paddle.flops`` can count them.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import paddle
import paddle.nn as nn

from ..errors import ModelError
from ..layers import (
    Attend,
    DropPath,
    PatchEmbed,
    PointwiseLinear,
    check_choice,
    get_ffn_layer,
    get_norm_layer,
    mark_as_linear,
    merge_heads,
    split_heads,
    split_heads_channels_first,
)
from ..layers.activation import GELU
from ..layers.conv import Conv2D, Conv2DTranspose
from ..layers.linear import Linear
from ..layers.mlp import FFNS
from ..layers.norm import NORMS
from ..layers.patch_embed import check_image_input
from ..layers.subsample import Subsample
from ..model_cfg import DEFAULT_CROP_PCT
from ..registry import build_model, register_model
from .base import Classifier

__all__ = ["EdgeViT", "edgevit_xxs", "edgevit_xs", "edgevit_s", "EdgeViT_XXS", "EdgeViT_XS", "EdgeViT_S"]

# eps values of the authors' code: patch-embedding and LocalProp LayerNorms use PyTorch's default 1e-5, the two
# SelfAttn pre-norms 1e-6; BatchNorms 1e-5.
PATCH_NORM_EPS = 1e-5
ATTN_PRENORM_EPS = 1e-6
LOCAL_PROP_NORM_EPS = 1e-5

#: patch-embedding stride of each stage (the first embeds 4x4 patches, the others halve the map)
PATCH_SIZES = (4, 2, 2, 2)
#: the total stride: input height and width must be multiples of it
STRIDE = math.prod(PATCH_SIZES)


class LocalAgg(nn.Layer):
    """Local aggregation: x + dw3x3(x); x + pw(dw5x5(pw(BN(x)))); x + ConvMlp(BN(x)). NCHW in and out."""

    #: both BatchNorms feed a 1x1 conv directly (see ``export.fold``)
    bn_folds = (("norm1", "conv1", "in"), ("norm2", "mlp.fc1", "in"))

    def __init__(self, dim: int, mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0,
                 act_layer: Callable = GELU):
        super().__init__()
        self.pos_embed = Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2D(dim)
        self.conv1 = Conv2D(dim, dim, 1)
        self.conv2 = Conv2D(dim, dim, 1)
        self.attn = Conv2D(dim, dim, 5, padding=2, groups=dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.BatchNorm2D(dim)
        self.mlp = get_ffn_layer("conv")(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)

    def forward(self, x):
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class GlobalSparseAttn(nn.Layer):
    """Sparse global attention: sample every r-th position, multi-head attention, LocalProp back to full size.

    Works on tokens [B, N, C] (with H, W given) or, with ``channels_first``, on NCHW maps; the output has the
    layout of the input.
    """

    #: a BatchNorm after LocalProp feeds the output projection (see ``export.fold``)
    bn_folds = (("norm", "proj", "in"),)

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, sr_ratio: int = 1, norm_layer: Optional[Callable] = None,
                 channels_first: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.sr_ratio = sr_ratio
        self.channels_first = channels_first
        linear = PointwiseLinear if channels_first else Linear  # the same parameters either way
        self.qkv = linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.attend = Attend(self.head_dim ** -0.5, attn_drop, channels_first)
        if sr_ratio > 1:
            self.sampler = Subsample(sr_ratio)  # the authors' AvgPool2d(kernel 1, stride r)
            self.local_prop = Conv2DTranspose(dim, dim, sr_ratio, stride=sr_ratio, groups=dim)
            self.norm = norm_layer(dim)
        if channels_first:
            self.proj = Conv2D(dim, dim, 1)
            mark_as_linear(self.proj)
        else:
            self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, map_shape=None):
        """``x``: an NCHW map (``channels_first``) or tokens [B, N, C] with ``map_shape``, the [B, C, H, W] of the map
        they came from (a list, or ``paddle.shape`` of the map: an export then computes no shapes)."""
        if self.channels_first:
            return self._forward_channels_first(x)
        r = self.sr_ratio
        if r > 1:  # sample on the NCHW map
            sampled = self.sampler(x.transpose([0, 2, 1]).reshape(map_shape))
            x = sampled.reshape([0, 0, -1]).transpose([0, 2, 1])
        q, k, v = split_heads(self.qkv(x), self.num_heads, self.head_dim)
        x = merge_heads(self.attend(q, k, v))
        if r > 1:
            x = self.local_prop(x.transpose([0, 2, 1]).reshape(paddle.shape(sampled)))
            x = self.norm(x.reshape([0, 0, -1]).transpose([0, 2, 1]))
        return self.proj_drop(self.proj(x))

    def _forward_channels_first(self, x):
        """The same computation on NCHW maps with no transpose: qkv as W^T @ x on [B, C, N], heads split by a
        reshape, attention with the transposes folded into its matmuls, the result reshaped back to NCHW."""
        if self.sr_ratio > 1:
            x = self.sampler(x)
        # shapes as 0 (keep), -1 (the rest) or the map's own shape: an export then computes no shape arithmetic
        q, k, v = split_heads_channels_first(self.qkv(x.reshape([0, 0, -1])), self.num_heads, self.head_dim)
        x = self.attend(q, k, v).reshape(paddle.shape(x))
        if self.sr_ratio > 1:
            x = self.norm(self.local_prop(x))
        return self.proj_drop(self.proj(x))


class SelfAttn(nn.Layer):
    """x + dw3x3(x) (conditional positional encoding); then x + Attn(norm1(x)); x + FFN(norm2(x)).

    BatchNorm pre-norms fold into ``qkv`` (the sampler only picks positions) and the FFN's ``fc1``.
    """

    bn_folds = (("norm1", "attn.qkv", "in"), ("norm2", "mlp.fc1", "in"))

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, drop: float = 0.0,
                 attn_drop: float = 0.0, drop_path: float = 0.0, sr_ratio: int = 1, act_layer: Callable = GELU,
                 prenorm_layer: Callable = nn.LayerNorm, prop_norm_layer: Callable = nn.LayerNorm,
                 ffn_layer: Callable = nn.Linear, channels_first: bool = False):
        super().__init__()
        self.channels_first = channels_first
        self.pos_embed = Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = prenorm_layer(dim)
        self.attn = GlobalSparseAttn(dim, num_heads, qkv_bias, attn_drop, drop, sr_ratio, prop_norm_layer,
                                     channels_first)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = prenorm_layer(dim)
        self.mlp = ffn_layer(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=drop)
        if channels_first:
            mark_as_linear(self.mlp.fc1, self.mlp.fc2)

    def forward(self, x):
        x = x + self.pos_embed(x)
        if self.channels_first:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        map_shape = paddle.shape(x)
        x = x.reshape([0, 0, -1]).transpose([0, 2, 1])
        x = x + self.drop_path(self.attn(self.norm1(x), map_shape))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.transpose([0, 2, 1]).reshape(map_shape)


class LGLBlock(nn.Layer):
    """Local-global-local bottleneck: LocalAgg (only where the sampling ratio r > 1), then SelfAttn."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int = 1, mlp_ratio: float = 4.0, drop: float = 0.0,
                 drop_path: float = 0.0, **attn_kwargs):
        super().__init__()
        self.local_agg = LocalAgg(dim, mlp_ratio, drop, drop_path) if sr_ratio > 1 else nn.Identity()
        self.self_attn = SelfAttn(dim, num_heads, mlp_ratio, drop=drop, drop_path=drop_path, sr_ratio=sr_ratio,
                                  **attn_kwargs)

    def forward(self, x):
        return self.self_attn(self.local_agg(x))


class EdgeViTStage(nn.Layer):
    """One stage: patch embedding (stride ``patch_size``, then a norm), optional dropout, then its blocks."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, patch_norm_layer: Callable,
                 block_kwargs: Sequence[dict], drop: float = 0.0):
        super().__init__()
        self.patch_embed = PatchEmbed(in_chans, dim, patch_size, patch_norm_layer)
        self.pos_drop = nn.Dropout(drop) if drop > 0 else nn.Identity()
        self.blocks = nn.Sequential(*[LGLBlock(dim, **kw) for kw in block_kwargs])

    def forward(self, x):
        return self.blocks(self.pos_drop(self.patch_embed(x)))


class EdgeViT(Classifier):
    """EdgeViT with switchable norm and FFN.

    Args:
        depths: blocks per stage.
        embed_dims: channels per stage.
        head_dim: channels per attention head (heads = channels // head_dim).
        mlp_ratio: FFN hidden channels / channels.
        qkv_bias: bias in the qkv projection.
        sr_ratios: sampling ratio r per stage (LocalAgg and LocalProp only where r > 1).
        in_chans: input channels.
        num_classes: classifier outputs (>= 1; ``reset_classifier(0)`` removes the head).
        drop_rate: dropout after the first patch embedding, in the FFNs and after the attention projection.
        attn_drop_rate: dropout on the attention weights.
        drop_path_rate: stochastic depth of the last block; rates increase linearly from 0 over all blocks.
        norm: ``"gn"``, ``"ln"`` or ``"bn"`` for the norms the original has as LayerNorm.
        ffn: ``"conv"`` (1x1 convs, NCHW) or ``"linear"`` (Linear on tokens) for the SelfAttn FFN.
        norm_groups: GroupNorm groups (``norm="gn"`` only); must divide every stage's channels.

    The head averages the final map over all positions (the authors' global average pooling).
    """

    family = "edgevit"
    switches = {"norm": NORMS, "ffn": FFNS}
    stride = STRIDE
    #: the final BatchNorm folds into the head: average pooling commutes with a per-channel affine map
    bn_folds = (("norm", "head", "in"),)

    def __init__(self, depths: Sequence[int] = (1, 1, 3, 2), embed_dims: Sequence[int] = (36, 72, 144, 288),
                 head_dim: int = 36, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 sr_ratios: Sequence[int] = (4, 2, 2, 1), in_chans: int = 3, num_classes: int = 1000,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, norm: str = "gn",
                 ffn: str = "conv", norm_groups: int = 1):
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("ffn", ffn, FFNS)
        n = len(PATCH_SIZES)
        if not (len(depths) == len(embed_dims) == len(sr_ratios) == n):
            raise ModelError(f"depths, embed_dims and sr_ratios need one value for each of the {n} stages")
        self.check_class_and_channel_counts(num_classes, in_chans)
        if norm == "gn" and any(d % norm_groups for d in embed_dims):
            raise ModelError(f"norm_groups={norm_groups} must divide every stage's channels {list(embed_dims)}")
        if any(d % head_dim for d in embed_dims):
            raise ModelError(f"head_dim={head_dim} must divide every stage's channels {list(embed_dims)}")
        self.num_classes = int(num_classes)
        self.in_chans = int(in_chans)
        self.variant = {"norm": norm, "ffn": ffn}
        self.num_features = embed_dims[-1]

        channels_first = ffn == "conv"
        layout = "nchw" if channels_first else "nlc"
        block_layers = dict(
            prenorm_layer=get_norm_layer(norm, layout, ATTN_PRENORM_EPS, norm_groups),
            prop_norm_layer=get_norm_layer(norm, layout, LOCAL_PROP_NORM_EPS, norm_groups),
            ffn_layer=get_ffn_layer(ffn), channels_first=channels_first)
        patch_norm = get_norm_layer(norm, "nchw", PATCH_NORM_EPS, norm_groups)
        dpr = paddle.linspace(0, drop_path_rate, sum(depths)).tolist() if sum(depths) > 1 else [drop_path_rate]
        self.stages = nn.LayerList()
        self.feature_info = []
        prev, first, reduction = in_chans, 0, 1
        for i, (depth, dim, r, patch) in enumerate(zip(depths, embed_dims, sr_ratios, PATCH_SIZES)):
            block_kwargs = [dict(num_heads=dim // head_dim, sr_ratio=r, mlp_ratio=mlp_ratio, drop=drop_rate,
                                 drop_path=dpr[first + j], qkv_bias=qkv_bias, attn_drop=attn_drop_rate, **block_layers)
                            for j in range(depth)]
            self.stages.append(EdgeViTStage(prev, dim, patch, patch_norm, block_kwargs, drop_rate if i == 0 else 0.0))
            reduction *= patch
            self.feature_info.append(dict(module=f"stages.{i}", num_chs=dim, reduction=reduction))
            prev, first = dim, first + depth
        self.norm = nn.BatchNorm2D(self.num_features)
        self.head = nn.Linear(self.num_features, self.num_classes)
        self.apply(self._init_weights)

    def forward_features(self, x):
        if paddle.in_dynamic_mode():  # an exported program takes any size; the predictor checks the input
            check_image_input(x.shape, self.in_chans, self.stride, self.model_name, x.dtype)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def stage_groups(self):
        """The four stages, each with its patch embedding."""
        return [[stage] for stage in self.stages]

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(axis=[2, 3])
        return x if pre_logits else self.head(x)


def _create_edgevit(name: str, arch: dict, **kwargs) -> EdgeViT:
    return build_model(EdgeViT, name, arch, kwargs)


#: the authors' EdgeViT (their weights, ``convert.load_original``) is our ``norm="ln", ffn="linear"`` variant
AUTHORS_VARIANT = {"norm": "ln", "ffn": "linear"}

# ImageNet-style evaluation at 224 (bicubic resize to 256, centre crop), as the authors evaluate (DeiT's eval
# transform); our Flowers-102 configs set their own sizes.
default_cfgs = {name: dict(input_size=(3, 224, 224), crop_pct=DEFAULT_CROP_PCT, interpolation="bicubic")
                for name in ("edgevit_xxs", "edgevit_xs", "edgevit_s")}

# Parameters (1000 classes, any norm/ffn) and GMACs at 224 are measured by tools/summary.py; see README.

@register_model
def edgevit_xxs(**kwargs) -> EdgeViT:
    """EdgeViT-XXS: 4,067,704 parameters, 0.56 GMACs at 224x224 (paper: 4.1M, 0.6)."""
    return _create_edgevit("edgevit_xxs", dict(depths=(1, 1, 3, 2), embed_dims=(36, 72, 144, 288), head_dim=36,
                                               mlp_ratio=4.0, sr_ratios=(4, 2, 2, 1)), **kwargs)


@register_model
def edgevit_xs(**kwargs) -> EdgeViT:
    """EdgeViT-XS: 6,770,056 parameters, 1.14 GMACs at 224x224 (paper: 6.7M, 1.1)."""
    return _create_edgevit("edgevit_xs", dict(depths=(1, 1, 3, 1), embed_dims=(48, 96, 240, 384), head_dim=48,
                                              mlp_ratio=4.0, sr_ratios=(4, 2, 2, 1)), **kwargs)


@register_model
def edgevit_s(**kwargs) -> EdgeViT:
    """EdgeViT-S: 13,108,168 parameters, 1.93 GMACs at 224x224 (paper: 11.1M, 1.9)."""
    return _create_edgevit("edgevit_s", dict(depths=(1, 2, 5, 3), embed_dims=(48, 96, 240, 384), head_dim=48,
                                             mlp_ratio=4.0, sr_ratios=(4, 2, 2, 1)), **kwargs)


# The seed reproduction's names.
EdgeViT_XXS = edgevit_xxs
EdgeViT_XS = edgevit_xs
EdgeViT_S = edgevit_s
