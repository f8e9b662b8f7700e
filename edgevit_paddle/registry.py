"""Model registry: ``@register_model`` factories, ``create_model(name, **kwargs)`` and ``list_models()``."""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from typing import Any, Callable, Dict, List, Tuple

import paddle.nn as nn

_model_entrypoints: Dict[str, Callable[..., nn.Layer]] = {}


def register_model(fn: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
    """Register a model factory under its function name; a name registered twice raises."""
    name = fn.__name__
    if name in _model_entrypoints:
        raise ValueError(f"model '{name}' is registered twice")
    _model_entrypoints[name] = fn
    return fn


def list_models(pattern: str = "*") -> List[str]:
    """Sorted names of the registered models matching a shell-style ``pattern``."""
    return sorted(n for n in _model_entrypoints if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    return name in _model_entrypoints


def model_entrypoint(name: str) -> Callable[..., nn.Layer]:
    """The factory registered as ``name``; an unknown name raises ValueError naming the closest ones."""
    if name not in _model_entrypoints:
        close = difflib.get_close_matches(str(name), list(_model_entrypoints), n=3, cutoff=0.4)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown model '{name}'{hint}; registered models: {', '.join(list_models())}")
    return _model_entrypoints[name]


def create_model(name: str, **kwargs: Any) -> nn.Layer:
    """Build a registered model. Keyword arguments that are None are dropped (the preset's value stays).

    Example: ``create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=102, drop_path_rate=0.1)``.
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return model_entrypoint(name)(**kwargs)


def build_model(cls: type, name: str, arch: Dict[str, Any], kwargs: Dict[str, Any],
                default_input_size: Tuple[int, int, int]) -> nn.Layer:
    """Merge user ``kwargs`` over a preset's ``arch`` and build ``cls``; unknown arguments raise ValueError.

    The built model gets ``default_input_size`` (C, H, W, with C following ``in_chans``) and ``model_name``.
    """
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown argument '{unknown[0]}' for model '{name}'{hint}; valid: {', '.join(valid)}")
    cfg = {**arch, **kwargs}
    model = cls(**cfg)
    c, h, w = default_input_size
    if "img_size" in kwargs:
        h = w = int(kwargs["img_size"])
    model.default_input_size = (int(cfg.get("in_chans", c)), h, w)
    model.model_name = name
    return model
