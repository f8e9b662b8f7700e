"""Model registry: ``@register_model`` factories, ``create_model(name, **kwargs)``, ``list_models()``, and the presets'
``default_cfgs`` (see ``model_cfg.ModelCfg``).

A model file defines ``default_cfgs = {"<name>": dict(<ModelCfg fields>), ...}`` before its factories, as timm does;
``@register_model`` takes the entry of the factory's name from the factory's own module, so a new family registers by
touching only its own file.
"""
from __future__ import annotations

import fnmatch
import inspect
import sys
from typing import Any, Callable, Dict, List, Optional

import paddle.nn as nn

from .errors import ModelError, did_you_mean

_model_entrypoints: Dict[str, Callable[..., nn.Layer]] = {}
_default_cfgs: Dict[str, Dict[str, Any]] = {}


def register_model(fn: Callable[..., nn.Layer]) -> Callable[..., nn.Layer]:
    """Register a model factory under its function name, with the preset ``default_cfgs[name]`` of its module.

    A name registered twice, or a factory whose module has no ``default_cfgs`` entry for it, raises.
    """
    name = fn.__name__
    if name in _model_entrypoints:
        raise ValueError(f"model '{name}' is registered twice")
    cfgs = getattr(sys.modules.get(fn.__module__), "default_cfgs", None)
    if not isinstance(cfgs, dict) or name not in cfgs:
        raise ValueError(f"model '{name}' has no entry in default_cfgs of {fn.__module__}: define "
                         f"default_cfgs = {{'{name}': dict(...)}} above its factory")
    _model_entrypoints[name] = fn
    _default_cfgs[name] = dict(cfgs[name])
    return fn


def unregister_model(name: str) -> None:
    """Remove a registered model (for models defined in tests)."""
    _model_entrypoints.pop(name, None)
    _default_cfgs.pop(name, None)


def list_models(pattern: str = "*") -> List[str]:
    """Sorted names of the registered models matching a shell-style ``pattern``."""
    return sorted(n for n in _model_entrypoints if fnmatch.fnmatch(n, pattern))


def model_entrypoint(name: str) -> Callable[..., nn.Layer]:
    """The factory registered as ``name``; an unknown name raises ModelError naming the closest ones."""
    if name not in _model_entrypoints:
        hint = did_you_mean(name, _model_entrypoints, n=3, cutoff=0.4)
        raise ModelError(f"unknown model '{name}'{hint}; registered models: {', '.join(list_models())}")
    return _model_entrypoints[name]


def create_model(name: str, pretrained: bool = False, checkpoint_path: Optional[str] = None, **kwargs: Any) -> nn.Layer:
    """Build a registered model, as timm's ``create_model`` does. Keyword arguments that are None are dropped (the
    preset's value stays).

    ``pretrained=True`` is refused in one line: no weights are published (convert the authors' with
    ``tools/convert_original.py``, or train); ``checkpoint_path`` loads weights of this model (a ``.pdparams`` or
    ``.safetensors`` file or checkpoint prefix; read safely, their identity and shapes checked).

    Example: ``create_model("edgevit_xxs", norm="ln", ffn="linear", num_classes=102, drop_path_rate=0.1)``.
    """
    if pretrained:
        raise ModelError(f"no pretrained weights are published for '{name}': convert the authors' with "
                         "tools/convert_original.py and pass checkpoint_path=..., or train with "
                         "-o Global.pretrained_model=...; create_model(..., pretrained=False) builds it untrained")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    net = model_entrypoint(name)(**kwargs)
    return net.load_checkpoint(checkpoint_path) if checkpoint_path else net  # Classifier.load_checkpoint


def constructor_params(cls: type) -> Dict[str, inspect.Parameter]:
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` into the base classes (so ``ViTBN(norm="bn",
    **kwargs)`` has all of ``VisionTransformer``'s); the first definition of a name wins."""
    params: Dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        sig = inspect.signature(vars(klass)["__init__"])
        for p in list(sig.parameters.values())[1:]:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                params.setdefault(p.name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return params


def build_model(cls: type, name: str, arch: Dict[str, Any], kwargs: Dict[str, Any]) -> nn.Layer:
    """Merge user ``kwargs`` over a preset's ``arch``, build ``cls`` and give it its ``default_cfg``.

    An unknown argument is a ``ModelError`` naming the closest valid one.
    """
    params = constructor_params(cls)
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        hint = did_you_mean(unknown[0], params)
        raise ModelError(f"unknown argument '{unknown[0]}' for model '{name}'{hint}; valid: {', '.join(params)}")
    for key, value in kwargs.items():
        _check_type(name, key, value, params[key].default)
    cfg = {**arch, **kwargs}
    model = cls(**cfg)
    resolved = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    resolved.update(cfg)
    skip = set(getattr(cls, "regularisation_args", ())) | {"num_classes"}
    model.set_default_cfg(name, _default_cfgs.get(name, {}), {k: v for k, v in resolved.items() if k not in skip})
    return model


def _check_type(model: str, key: str, value: Any, default: Any) -> None:
    """A model argument must have its default's type (an int is a float; a list and a tuple are sequences of it):
    ``drop_path_rate="abc"`` is refused, not trained with silently."""
    if default is inspect.Parameter.empty or default is None or value is None:
        return
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        kind = "a list" if isinstance(default, (list, tuple)) else type(default).__name__
        raise ModelError(f"argument '{key}' of model '{model}' must be {kind} like its default {default!r}, got "
                         f"{type(value).__name__} {value!r}")
