"""The one place a network becomes a prepared ``paddle.Model`` (hapi): its input and label specs, loss, metrics and
AMP, for training, evaluation and the benchmark's training steps."""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from .optim import build_loss, build_metric


def hapi_model(net: nn.Layer, channels: int, image_size: int, optimizer=None, loss=None, metrics=None,
               amp: Optional[Dict[str, Any]] = None) -> paddle.Model:
    """``net`` under ``paddle.Model``: input ``x`` ``[N, channels, image_size, image_size]`` float32, label
    ``[N, 1]`` int64, prepared with ``optimizer``, ``loss`` and ``metrics``."""
    model = paddle.Model(net, inputs=[InputSpec([None, channels, image_size, image_size], "float32", "x")],
                         labels=[InputSpec([None, 1], "int64", "label")])
    model.prepare(optimizer, loss, metrics, amp_configs=amp)
    return model


def prepare_model(net: nn.Layer, cfg: Dict[str, Any], optimizer=None) -> paddle.Model:
    """``hapi_model`` as the config ``cfg`` says (``Data`` sizes, ``Loss``, ``Metric``, ``AMP`` on a GPU)."""
    amp = None
    level = cfg["AMP"]["level"]
    if level != "O0":
        if cfg["Global"]["device"] == "gpu" and paddle.is_compiled_with_cuda():
            amp = {"level": level}
        else:
            warnings.warn(f"AMP.level={level} needs a GPU; training in float32 on CPU")
    return hapi_model(net, cfg["Data"]["channels"], cfg["Data"]["image_size"], optimizer, build_loss(cfg["Loss"]),
                      build_metric(cfg["Metric"], net.num_classes), amp)
