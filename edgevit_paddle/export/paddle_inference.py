"""Dygraph -> Paddle Inference: ``inference.json`` + ``inference.pdiparams`` (Paddle 3, PIR) with a dynamic batch
(and dynamic height and width unless the model has a fixed input size), BatchNorms folded (``fold.py``), and
``inference.yml``: what a predictor needs (input size, stride, preprocessing, class names, model and variant), and the
same in PaddleClas's and PaddleX's sections (``ecosystem.py``); ``label_list.txt``: PaddleClas's label map. The
program ends in a softmax: it outputs probabilities (``output: probabilities``).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
import yaml

from ..errors import ExportError
from ..inference import model_folder
from ..labels import label_map
from ..layers.norm import group_norm_export_form, has_group_norm
from .ecosystem import paddle_sections
from .fold import fold_batchnorm, remaining_batchnorms


def save_paddle(net: nn.Layer, out_dir: str, input_size: Sequence[int], meta: Dict[str, Any],
                fold: bool = True, onnx_program: Optional[str] = None) -> Dict[str, str]:
    """Save ``net`` (eval mode) for Paddle Inference into ``out_dir``: ``inference.json``/``.pdiparams``/``.yml``.

    Args:
        net: the dygraph model (its weights loaded).
        out_dir: folder to write.
        input_size: (C, H, W) the model is exported for (the preprocessing ends there); the batch is dynamic, and
            so are H and W (any multiple of the stride) unless ``default_cfg.fixed_input_size``.
        meta: sidecar fields (preprocess, class_names, weights...), written to ``inference.yml``; ``paddlex_name``
            (None: the model's name) is the ``Global.model_name`` written for PaddleX.
        fold: fold BatchNorms first (``fold_batchnorm``).
        onnx_program: a folder for the program paddle2onnx converts, when it must differ from Paddle Inference's:
            a model with GroupNorms writes them as oneDNN runs them in ``inference.json`` (layer_norm, which
            paddle2onnx 2.1 cannot convert) and as ONNX needs them (instance_norm) there
            (``layers.norm.group_norm_export_form``). Nothing is written there for a model without GroupNorm.
    Returns:
        The paths written (``onnx_program``: the program to convert to ONNX, ``inference.json``'s folder or the
        one given).
    """
    from paddle.static import InputSpec
    if not paddle.framework.use_pir_api():
        raise ExportError("FLAGS_enable_pir_api=0 (the legacy .pdmodel format) cannot export these models with "
                          "Paddle 3.3.1: its old-IR tracing rejects gelu and matmul ('must be Value, but got "
                          "Variable'); unset FLAGS_enable_pir_api, and for other runtimes export ONNX (--format onnx)")
    net.eval()
    model = fold_batchnorm(net) if fold else net
    cfg = net.default_cfg
    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(out_dir, model_folder.PREFIX)
    c, h, w = (int(v) for v in input_size)
    spec = [None, c, h, w] if cfg.fixed_input_size else [None, c, None, None]
    with group_norm_export_form("onednn"):
        paddle.jit.save(Probabilities(model), prefix, input_spec=[InputSpec(spec, "float32", "x")])
    converted = out_dir
    if onnx_program is not None and has_group_norm(model):
        with group_norm_export_form("onnx"):
            paddle.jit.save(Probabilities(model), os.path.join(onnx_program, model_folder.PREFIX),
                            input_spec=[InputSpec(spec, "float32", "x")])
        converted = onnx_program
    meta = dict(meta)
    their_name = meta.pop("paddlex_name", None) or cfg.name
    sidecar = {
        "model": cfg.name,
        "variant": {k: v for k, v in cfg.variant.items() if v is not None},
        "num_classes": int(net.num_classes),
        **meta,
        "input_size": [c, h, w],
        "stride": cfg.stride,
        "fixed_input_size": cfg.fixed_input_size,
        "channel_order": "RGB" if c == 3 else "GREY",
        "output": OUTPUT,
        "folded_batchnorms": len(getattr(model, "folded_bn", [])),
        "remaining_batchnorms": len(remaining_batchnorms(model)),
        "paddle_version": paddle.__version__,
    }
    names = list(sidecar.get("class_names") or [str(i) for i in range(net.num_classes)])
    theirs, why_not = paddle_sections(sidecar["preprocess"], names, their_name, c)
    sidecar.update(theirs or {"paddleclas_paddlex": f"not written: {why_not}"})
    write_sidecar(out_dir, sidecar)
    with open(model_folder.path(out_dir, "labels"), "w", encoding="utf-8") as f:
        f.write(label_map(names))
    files = {k: model_folder.path(out_dir, role) for k, role in (("model", "paddle_program"),
                                                                   ("params", "paddle_params"), ("sidecar", "sidecar"),
                                                                   ("labels", "labels"))}
    return {**files, "onnx_program": converted}


def write_sidecar(out_dir: str, sidecar: Dict[str, Any]) -> None:
    """Write ``inference.yml`` (keys in the order given)."""
    with open(model_folder.path(out_dir, "sidecar"), "w", encoding="utf-8") as f:
        yaml.safe_dump(sidecar, f, sort_keys=False, default_flow_style=None, allow_unicode=True)


#: what the exported program outputs (``inference.yml``'s ``output``): class probabilities, as PaddleClas's export
#: ends in a softmax, so every client prints probabilities; exports older than this field output logits
OUTPUT = "probabilities"


class Probabilities(nn.Layer):
    """The exported program: the model, then a softmax over the classes."""

    def __init__(self, net: nn.Layer):
        super().__init__()
        self.net = net

    def forward(self, x):
        return F.softmax(self.net(x), axis=-1)
