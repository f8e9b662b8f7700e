"""Vision Transformer and its BatchNorm variants, for the study "does BatchNorm speed up transformers?".

- ``ViT``: Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021, https://arxiv.org/abs/2010.11929:
  patch embedding (conv, kernel = stride = patch, then a norm), class token, learnable position embedding,
  pre-norm blocks (norm -> multi-head attention, norm -> MLP), final norm, Linear head on the class token.
- ``ViTBNFFN``: attention keeps its LayerNorm; the LayerNorm before the FFN is removed and the FFN becomes
  Linear -> BatchNorm over the hidden channels (statistics over batch and tokens) -> GELU -> Linear.
- ``ViTBN``: every LayerNorm (patch embedding, attention and FFN pre-norms, final) becomes a BatchNorm over channels.

All three run every one of their ``depth`` blocks (a widely cited BatchNorm-ViT implementation returned after the
first block, which is where its "60% faster" came from); the tests check this. See Yao et al., 2021,
"Leveraging Batch Normalization for Vision Transformers" for the equal-depth comparison.
"""
from __future__ import annotations

from typing import Callable, Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..errors import ModelError
from ..layers import (
    Attend,
    DropPath,
    Mlp,
    PatchEmbed,
    check_choice,
    get_norm_layer,
    merge_heads,
    split_heads,
    trunc_normal_,
)
from ..layers.linear import Linear
from ..layers.norm import NORMS
from ..layers.patch_embed import check_image_input
from ..registry import build_model, register_model
from .base import Classifier

__all__ = ["VisionTransformer", "ViT", "ViTBNFFN", "ViTBN"]


class Attention(nn.Layer):
    """Multi-head self-attention on tokens; inner width ``num_heads * head_dim`` may differ from ``dim``."""

    def __init__(self, dim: int, num_heads: int = 8, head_dim: Optional[int] = None, qkv_bias: bool = False,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim or dim // num_heads
        inner = num_heads * self.head_dim
        self.qkv = Linear(dim, inner * 3, bias_attr=None if qkv_bias else False)
        self.attend = Attend(self.head_dim ** -0.5, attn_drop)
        self.proj = Linear(inner, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        q, k, v = split_heads(self.qkv(x), self.num_heads, self.head_dim)
        return self.proj_drop(self.proj(merge_heads(self.attend(q, k, v))))


class Block(nn.Layer):
    """Pre-norm transformer block: x + Attn(norm1(x)); x + MLP(norm2(x)) (norm2 is absent with a BN-FFN)."""

    #: BatchNorm pre-norms fold into the qkv projection and the FFN's fc1 (see ``export.fold``)
    bn_folds = (("norm1", "attn.qkv", "in"), ("norm2", "mlp.fc1", "in"))

    def __init__(self, dim: int, num_heads: int, head_dim: Optional[int], mlp_dim: int, qkv_bias: bool = False,
                 drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0, norm_layer: Callable = nn.LayerNorm,
                 ffn_norm_layer: Optional[Callable] = None):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, head_dim, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim) if ffn_norm_layer is None else nn.Identity()
        self.mlp = Mlp(dim, mlp_dim, drop=drop, norm_layer=ffn_norm_layer)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(Classifier):
    """ViT with a switchable norm (``norm``) and an optional BatchNorm inside the FFN (``ffn_norm``).

    Args:
        img_size: training image size (the position embedding's grid; other multiples of the patch size are
            served by interpolating it).
        patch_size: patch size (kernel and stride of the patch embedding).
        in_chans: input channels.
        num_classes: classifier outputs (>= 1).
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads.
        head_dim: width per head (default ``embed_dim // num_heads``).
        mlp_dim: FFN hidden width.
        qkv_bias: bias in the qkv projection.
        drop_rate: dropout on the embeddings, in the FFN and after the attention projection.
        attn_drop_rate: dropout on the attention weights.
        drop_path_rate: stochastic depth of the last block, increasing linearly from 0.
        norm: ``"ln"`` (ViT, ViTBNFFN) or ``"bn"`` (ViTBN) for the patch-embedding, pre- and final norms.
        ffn_norm: ``None``, or ``"bn"`` for Linear -> BatchNorm -> GELU -> Linear without FFN pre-norm (ViTBNFFN).
        global_pool: ``"token"`` (class token) or ``"avg"`` (mean of the patch tokens).
    """

    family = "vit"
    # the position embedding is learnt for one grid: other sizes interpolate it in dygraph, exports keep the size
    cfg_defaults = {"fixed_input_size": True}
    # the study's variants are registered models of their own (vit_*, vitbnffn_*, vitbn_*), not switches
    switches = {}
    #: a BatchNorm final norm folds into the head (class-token selection and averaging commute with it)
    bn_folds = (("norm", "head", "in"),)
    global_pools = ("token", "avg")

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3, head_dim: Optional[int] = None,
                 mlp_dim: int = 768, qkv_bias: bool = False, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, norm: str = "ln", ffn_norm: Optional[str] = None,
                 global_pool: str = "token"):
        super().__init__()
        check_choice("norm", norm, NORMS)
        check_choice("global_pool", global_pool, self.global_pools)
        if ffn_norm is not None:
            check_choice("ffn_norm", ffn_norm, NORMS)
        self.check_class_and_channel_counts(num_classes, in_chans)
        if int(depth) < 1:
            raise ModelError(f"depth must be >= 1, got {depth}")
        if img_size % patch_size:
            raise ModelError(f"img_size {img_size} must be a multiple of patch_size {patch_size}")
        self.num_classes = int(num_classes)
        self.in_chans = int(in_chans)
        self.img_size, self.stride = img_size, patch_size
        self.num_features = embed_dim
        self.global_pool = global_pool
        self.variant = {"norm": norm, "ffn_norm": ffn_norm}
        norm_layer = get_norm_layer(norm, "nlc", 1e-5)
        ffn_norm_layer = get_norm_layer(ffn_norm, "nlc", 1e-5) if ffn_norm else None

        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size, norm_layer, flatten=True)
        self.grid = img_size // patch_size
        self.cls_token = self.create_parameter([1, 1, embed_dim], default_initializer=trunc_normal_)
        self.pos_embed = self.create_parameter([1, self.grid ** 2 + 1, embed_dim], default_initializer=trunc_normal_)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = paddle.linspace(0, drop_path_rate, depth).tolist() if depth > 1 else [drop_path_rate]
        self.blocks = nn.Sequential(*[
            Block(embed_dim, num_heads, head_dim, mlp_dim, qkv_bias, drop_rate, attn_drop_rate, dpr[i], norm_layer,
                  ffn_norm_layer) for i in range(depth)])
        self.norm = norm_layer(embed_dim)
        self.head = nn.Linear(embed_dim, self.num_classes)
        self.feature_info = [dict(module=f"blocks.{depth - 1}", num_chs=embed_dim, reduction=patch_size)]
        self.apply(self._init_weights)

    def no_weight_decay(self) -> set:
        return {"pos_embed", "cls_token"}

    def stage_groups(self):
        """One stage per block; the embedding (patches, class token, positions) belongs to the first."""
        groups = [[block] for block in self.blocks]
        groups[0] = [self.patch_embed, self.cls_token, self.pos_embed] + groups[0]
        return groups

    def _pos_embed(self, grid_h: int, grid_w: int):
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patch_pos = patch_pos.reshape([1, self.grid, self.grid, -1]).transpose([0, 3, 1, 2])
        patch_pos = F.interpolate(patch_pos, size=[grid_h, grid_w], mode="bicubic", align_corners=False)
        patch_pos = patch_pos.flatten(2).transpose([0, 2, 1])
        return paddle.concat([cls_pos, patch_pos], axis=1)

    def forward_features(self, x):
        """Tokens after the final norm: [B, 1 + number of patches, embed_dim] (class token first)."""
        check_image_input(x.shape, self.in_chans, self.stride, self.model_name, x.dtype)
        gh, gw = x.shape[2] // self.stride, x.shape[3] // self.stride
        x = self.patch_embed(x)
        cls = self.cls_token + paddle.zeros_like(x[:, :1])  # broadcast to the (possibly dynamic) batch
        x = self.pos_drop(paddle.concat([cls, x], axis=1) + self._pos_embed(gh, gw))
        return self.norm(self.blocks(x))

    def forward_head(self, x, pre_logits: bool = False):
        x = x[:, 0] if self.global_pool == "token" else x[:, 1:].mean(axis=1)
        return x if pre_logits else self.head(x)


ViT = VisionTransformer


class ViTBNFFN(VisionTransformer):
    """ViT whose FFN is Linear -> BatchNorm -> GELU -> Linear, without the LayerNorm before it."""

    def __init__(self, ffn_norm: Optional[str] = "bn", **kwargs):
        super().__init__(ffn_norm=ffn_norm, **kwargs)


class ViTBN(VisionTransformer):
    """ViT with every LayerNorm replaced by a BatchNorm over channels."""

    def __init__(self, norm: str = "bn", **kwargs):
        super().__init__(norm=norm, **kwargs)


# The BatchNorm-ViT study's MNIST setup and a 32x32 RGB one (CIFAR-sized).
_MNIST = dict(img_size=28, patch_size=7, in_chans=1, num_classes=10, embed_dim=64, depth=6, num_heads=8,
              head_dim=64, mlp_dim=128)
_CIFAR = dict(img_size=32, patch_size=4, in_chans=3, num_classes=10, embed_dim=128, depth=6, num_heads=4,
              head_dim=32, mlp_dim=256)


def _factory(cls: type, name: str, arch: dict, doc: str) -> Callable[..., VisionTransformer]:
    """The registered factory ``name``: ``cls`` with the preset ``arch`` (the six presets differ in nothing else)."""
    def create(**kwargs) -> VisionTransformer:
        return build_model(cls, name, arch, kwargs)
    create.__name__ = create.__qualname__ = name
    create.__module__, create.__doc__ = __name__, doc
    return register_model(create)


# Digits at their own size with MNIST's mean and std, as configs/vit/*_mnist.yaml; the 32x32 RGB setup as CIFAR is
# usually evaluated (no resize, no crop).
_MNIST_CFG = dict(mean=(0.1307,), std=(0.3081,), crop_pct=1.0)
_CIFAR_CFG = dict(crop_pct=1.0)
default_cfgs = {**{f"{m}_mnist": _MNIST_CFG for m in ("vit", "vitbnffn", "vitbn")},
                **{f"{m}_cifar": _CIFAR_CFG for m in ("vit", "vitbnffn", "vitbn")}}


vit_mnist = _factory(ViT, "vit_mnist", _MNIST, "ViT, MNIST setup (28x28x1, patch 7, dim 64, depth 6, 8 heads of 64, "
                     "MLP 128).")
vitbnffn_mnist = _factory(ViTBNFFN, "vitbnffn_mnist", _MNIST, "ViTBNFFN, MNIST setup.")
vitbn_mnist = _factory(ViTBN, "vitbn_mnist", _MNIST, "ViTBN, MNIST setup.")
vit_cifar = _factory(ViT, "vit_cifar", _CIFAR, "ViT, 32x32 RGB setup (patch 4, dim 128, depth 6, 4 heads of 32, "
                     "MLP 256).")
vitbnffn_cifar = _factory(ViTBNFFN, "vitbnffn_cifar", _CIFAR, "ViTBNFFN, 32x32 RGB setup.")
vitbn_cifar = _factory(ViTBN, "vitbn_cifar", _CIFAR, "ViTBN, 32x32 RGB setup.")
