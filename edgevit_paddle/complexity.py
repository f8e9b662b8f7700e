"""Parameter and multiply-accumulate counts, including the work ``paddle.flops`` cannot see.

``paddle.flops`` counts only leaf layers it knows by exact type. Our own leaf layers that it does not know declare
their count themselves, as a method ``count_macs(inputs, output) -> int`` (the attention matmuls, channels-first qkv
projections, our norms); ``custom_ops`` below hands each such type to ``paddle.flops`` as a custom op, and our
subclasses of Paddle's layers (convolutions, GELU) the counter of their Paddle base. A new leaf layer needs nothing
here.
"""
from __future__ import annotations

import contextlib
import io
from typing import Callable, Dict, Sequence

import paddle
import paddle.nn as nn

from .layers.norm import count_norm_macs
from .paddle_compat import batch_norm_stats, flops_counter, is_batch_norm

#: Paddle's own layers that ``paddle.flops`` counts as zero, counted like its BatchNorm2D.
PADDLE_UNCOUNTED: Dict[type, Callable] = {nn.LayerNorm: count_norm_macs, nn.BatchNorm1D: count_norm_macs}


def _hook(count: Callable) -> Callable:
    def hook(layer, inputs, output):
        layer.total_ops += int(count(layer, inputs, output))
    return hook


def custom_ops(model: nn.Layer) -> Dict[type, Callable]:
    """``custom_ops`` for ``paddle.flops``: every leaf type in ``model`` that declares ``count_macs``, Paddle's
    layers in ``PADDLE_UNCOUNTED``, and our subclasses of Paddle's layers (``paddle.flops`` matches types exactly)
    counted as their Paddle base is. The one way this package teaches ``paddle.flops`` its layers; nothing is
    registered globally."""
    ops = {}
    for layer in model.sublayers(include_self=True):
        t = type(layer)
        if t in ops:
            continue
        count = getattr(t, "count_macs", None) or PADDLE_UNCOUNTED.get(t)
        if count is not None:
            ops[t] = _hook(count)
        elif flops_counter(t) is not None:
            ops[t] = flops_counter(t)
    return ops


def count_params(model: nn.Layer) -> int:
    """Number of parameters, trainable or frozen, without BatchNorm running statistics.

    Paddle stores a BatchNorm's running mean and variance as non-trainable parameters; like PyTorch and the
    paper, we count them as buffers, not parameters.
    """
    stats = {id(p) for layer in model.sublayers(include_self=True) if is_batch_norm(layer)
             for p in (batch_norm_stats(layer).mean, batch_norm_stats(layer).variance)}
    return int(sum(p.numel() for p in model.parameters() if id(p) not in stats))


def count_macs(model: nn.Layer, input_size: Sequence[int], print_detail: bool = False) -> int:
    """Multiply-accumulates of one forward pass at ``input_size`` ([N, C, H, W]) through ``paddle.flops``.

    Convolutions and Linear layers are counted as Paddle does (MACs), plus what our leaf layers declare (the two
    attention matmuls per attention layer, norms); Paddle's own report is silenced unless ``print_detail``.
    """
    quiet = contextlib.nullcontext() if print_detail else contextlib.redirect_stdout(io.StringIO())
    with quiet:
        macs = paddle.flops(model, list(input_size), custom_ops=custom_ops(model), print_detail=print_detail)
    return int(macs)


def complexity_table(names: Sequence[str], batch: int = 1) -> str:
    """A Markdown table of parameters and GMACs at each model's default input size, for every variant its family
    studies (``default_cfg.switches``)."""
    from .registry import create_model

    rows = ["| model | variant | input | params | GMACs |", "| --- | --- | --- | ---: | ---: |"]
    for name in names:
        for variant in create_model(name).default_cfg.variants():
            model = create_model(name, **variant)
            cfg = model.default_cfg
            size = [batch, *cfg.input_size]
            rows.append(f"| {name} | {cfg.variant_label() or '-'} | {'x'.join(map(str, size[1:]))} | "
                        f"{count_params(model):,} | {count_macs(model, size) / 1e9:.3f} |")
    return "\n".join(rows)
