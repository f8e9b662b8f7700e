"""Parameter and multiply-accumulate counts, including the attention matmuls that ``paddle.flops`` cannot see."""
from __future__ import annotations

import contextlib
import io
from typing import Sequence

import paddle
import paddle.nn as nn

from .layers import Attend, PointwiseLinear, count_attend_macs, count_pointwise_linear_macs
from .layers.norm import BatchNormTokens, GroupNorm2d, GroupNormTokens, LayerNorm2d

def _count_norm(layer: nn.Layer, inputs, output) -> None:
    layer.total_ops += int(2 * inputs[0].numel())


#: ``custom_ops`` for ``paddle.flops``: attention matmuls, channels-first qkv projections, and the norms it lacks counted like its BatchNorm.
CUSTOM_OPS = {Attend: count_attend_macs, PointwiseLinear: count_pointwise_linear_macs, GroupNorm2d: _count_norm, GroupNormTokens: _count_norm,
              LayerNorm2d: _count_norm, nn.LayerNorm: _count_norm, nn.BatchNorm1D: _count_norm,
              BatchNormTokens: _count_norm}


def count_params(model: nn.Layer) -> int:
    """Number of parameters, trainable or frozen, without BatchNorm running statistics.

    Paddle stores a BatchNorm's running mean and variance as non-trainable parameters; like PyTorch and the
    paper, we count them as buffers, not parameters.
    """
    stats = {id(p) for layer in model.sublayers(include_self=True) if isinstance(layer, nn.layer.norm._BatchNormBase)
             for p in (layer._mean, layer._variance)}
    return int(sum(p.numel() for p in model.parameters() if id(p) not in stats))


def count_macs(model: nn.Layer, input_size: Sequence[int], print_detail: bool = False) -> int:
    """Multiply-accumulates of one forward pass at ``input_size`` ([N, C, H, W]) through ``paddle.flops``.

    Convolutions and Linear layers are counted as Paddle does (MACs), plus the two attention matmuls per
    attention layer; Paddle's own report is silenced unless ``print_detail``.
    """
    quiet = contextlib.nullcontext() if print_detail else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        macs = paddle.flops(model, list(input_size), custom_ops=CUSTOM_OPS, print_detail=print_detail)
    return int(macs)


def variants(name: str):
    """The (norm, ffn) switch combinations a registered model has: all six for EdgeViT, one for the others."""
    if name.startswith("edgevit"):
        return [(n, f) for n in ("gn", "ln", "bn") for f in ("conv", "linear")]
    return [(None, None)]


def complexity_table(names: Sequence[str], batch: int = 1) -> str:
    """A Markdown table of parameters and GMACs at each model's default input size, for every variant."""
    from .registry import create_model

    rows = ["| model | norm | ffn | input | params | GMACs |", "| --- | --- | --- | --- | ---: | ---: |"]
    for name in names:
        for norm, ffn in variants(name):
            model = create_model(name, norm=norm, ffn=ffn)
            size = [batch, *model.default_input_size]
            ffn_label = ffn or ("linear+bn" if getattr(model, "ffn_norm_name", None) else "linear")
            rows.append(f"| {name} | {norm or getattr(model, 'norm_name', '-')} | "
                        f"{ffn_label} | {'x'.join(map(str, size[1:]))} | {count_params(model):,} | "
                        f"{count_macs(model, size) / 1e9:.3f} |")
    return "\n".join(rows)
