"""Building blocks shared by every model family, each written once."""
from .attention import Attend, PointwiseLinear, merge_heads, split_heads, split_heads_channels_first
from .conv import Conv2D, Conv2DTranspose
from .drop import DropPath, drop_path
from .mlp import FFNS, Mlp, get_ffn_layer
from .norm import NORMS, GroupNorm2d, GroupNormTokens, LayerNorm2d, check_choice, get_norm_layer
from .patch_embed import PatchEmbed
from .weight_init import init_torch_style, mark_as_linear, trunc_normal_

__all__ = [
    "Conv2D", "Conv2DTranspose", "Attend", "merge_heads", "split_heads",
    "PointwiseLinear", "split_heads_channels_first", "DropPath", "drop_path",
    "FFNS", "Mlp",
    "get_ffn_layer", "NORMS", "GroupNorm2d", "GroupNormTokens", "LayerNorm2d", "check_choice", "get_norm_layer",
    "PatchEmbed", "init_torch_style", "mark_as_linear", "trunc_normal_",
]
