"""The one way to build the model of a config, used by training, evaluation, export and the benchmark.

``build_model_from_config(cfg, num_classes, weights)`` reads the ``Model`` section (name + ``create_model``
arguments) and ``Data.channels``, checks them against the data and ``Data.image_size`` (a multiple of the model's
stride), and with ``weights`` refuses weights of another model or variant (the identity saved beside them) or of
other shapes, then loads them. Every problem is one line naming the config key.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import paddle.nn as nn

from .config import model_arguments
from .errors import ConfigError, ModelError
from .layers.patch_embed import check_image_input
from .registry import create_model
from .weights import check_identity, head_classes, load_fitting_weights, load_weights, saved_identity


def build_model_from_config(cfg: Dict[str, Any], num_classes: Optional[int] = None,
                            weights: Optional[str] = None) -> nn.Layer:
    """The model of ``cfg['Model']`` with ``Data.channels`` input channels.

    Args:
        cfg: a loaded config (``config.load_config``); only ``Model``, ``Data.channels`` (None: the model's own) and
            ``Data.image_size`` are read; ``Model.freeze_stages`` freezes the first stages.
        num_classes: the data's class count; ``Model.num_classes``, when given, must agree. Without it the count
            comes from ``weights`` (their saved identity, else their head), else from ``Model.num_classes``, else
            the preset.
        weights: a ``.pdparams`` file or checkpoint prefix to load, after the identity and shape checks.
    """
    src = cfg.get("__source__") or "config"
    name = cfg["Model"]["name"]
    kwargs = model_arguments(cfg["Model"])
    channels = cfg["Data"].get("channels")  # None: the model's own (the benchmark builds presets)
    if channels is not None and kwargs.get("in_chans") not in (None, channels):
        raise ConfigError(f"Model.in_chans is {kwargs['in_chans']} but Data.channels is {channels}; make them equal")
    if num_classes is not None and kwargs.get("num_classes") not in (None, num_classes):
        raise ConfigError(f"Model.num_classes is {kwargs['num_classes']} but the dataset has {num_classes} classes; "
                          "remove Model.num_classes or make them equal")
    state = identity = None
    if weights:
        state = load_weights(weights)
        identity = saved_identity(weights, state)
        if num_classes is None and kwargs.get("num_classes") is None:
            num_classes = (identity or {}).get("num_classes") or head_classes(state)
    if channels is not None:
        kwargs["in_chans"] = channels
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        net = create_model(name, **kwargs)
    except ModelError as e:  # an unknown name, switch or argument, or a value of the wrong type
        raise ConfigError(f"{src}: Model: {e}") from None
    size = cfg["Data"]["image_size"]
    try:
        check_image_input([1, net.in_chans, size, size], net.in_chans, net.default_cfg.stride, name)
    except ModelError as e:
        raise ConfigError(f"{src}: Data.image_size: {e}") from None
    if state is not None:
        check_identity(net, identity, weights)
        load_fitting_weights(net, state, weights)
    if cfg["Model"].get("freeze_stages"):
        try:
            net.freeze_stages(cfg["Model"]["freeze_stages"])
        except ModelError as e:
            raise ConfigError(f"{src}: Model.freeze_stages: {e}") from None
    return net
