"""Fine-tuning: start a run from weights (``Global.pretrained_model``, PaddleClas's name for it).

Accepted sources:

- our weights: a ``.pdparams`` file or checkpoint prefix (``output/<run>/checkpoints/best``), a run folder
  (``output/<run>``: its best checkpoint, else its latest) or its ``checkpoints/`` folder;
- an exported model folder (``inference.yml``): the checkpoint it was exported from, which its sidecar records (the
  exported ``.pdiparams`` have BatchNorms folded into convolutions and anonymous names, so they cannot be trained from);
- the authors' PyTorch weights (``.pth``/``.pt`` when torch is installed, or ``.npz``), through the converter.

Every tensor that matches is loaded; the classifier head (``head.*``) is left freshly initialised when the class count
differs. Any other missing, unexpected or mis-shaped tensor is one error listing them all, unless
``Global.pretrained_strict`` is false (a deliberate partial load: a warning lists exactly what was skipped). Weights of
another variant with the same shapes (GroupNorm into LayerNorm) are refused, as eval refuses them, unless
``Global.pretrained_any_variant`` is true.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from ..errors import MissingFileError, WeightsError
from ..inference import model_folder
from ..weights import (
    IDENTITY_KEY,
    PARTIAL,
    check_identity,
    compare_tensors,
    head_classes,
    load_weights,
    match_dtypes,
    saved_identity,
    tensor_problems,
)
from .checkpoint_saver import read_latest

#: file endings of the authors' (PyTorch) weights
AUTHORS_FORMATS = (".pth", ".pt", ".bin", ".npz")


def _from_folder(path: str) -> str:
    """The weights a folder stands for (see module doc)."""
    if os.path.isfile(model_folder.path(path, "sidecar")):
        source = model_folder.recorded_weights(path)
        if source and os.path.isfile(source if source.endswith(".pdparams") else source + ".pdparams"):
            return source
        raise WeightsError(f"'{path}' is an exported model: its parameters are folded and renamed for inference and "
                           f"cannot be trained from, and the checkpoint it was exported from ({source or 'unknown'}) "
                           "is not there; give a checkpoint (.pdparams) instead")
    ckpt = os.path.join(path, "checkpoints") if os.path.isdir(os.path.join(path, "checkpoints")) else path
    if os.path.isfile(os.path.join(ckpt, "best.pdparams")):
        return os.path.join(ckpt, "best")
    latest = read_latest(ckpt)
    if latest and os.path.isfile(os.path.join(ckpt, latest.get("checkpoint", "") + ".pdparams")):
        return os.path.join(ckpt, latest["checkpoint"])
    raise MissingFileError(f"'{path}' holds no weights: give a .pdparams file, a run folder (output/<run>), an "
                           "exported model folder, or the authors' .pth/.npz")


def read_pretrained(path: str, net: nn.Layer) -> Tuple[Dict[str, Any], Optional[Dict[str, Any]], str]:
    """(tensors by our names, their identity or None, the file read) for ``path`` (see module doc)."""
    if os.path.isdir(path):
        path = _from_folder(path)
    if path.endswith(AUTHORS_FORMATS):
        from ..convert import authors_identity, read_state_dict, to_our_keys
        if net.default_cfg.family != "edgevit":
            raise WeightsError(f"'{path}' is read as the authors' EdgeViT weights, but the config builds "
                               f"{net.model_name} ({net.default_cfg.family}); give weights of that model")
        return to_our_keys(read_state_dict(path), net), authors_identity(), path
    state = load_weights(path)
    return state, saved_identity(path, state), path


#: how a refusal of another variant's weights ends
_ANY_VARIANT = ", or set Global.pretrained_any_variant=true to load the tensors that fit anyway"


def _describe(net: nn.Layer) -> str:
    label = net.default_cfg.variant_label()
    return f"{net.model_name} ({label})" if label else net.model_name


def load_pretrained(net: nn.Layer, path: str, strict: bool = True, any_variant: bool = False) -> str:
    """Load the weights at ``path`` into ``net`` for fine-tuning; returns the log line saying what was loaded."""
    state, identity, source = read_pretrained(path, net)
    if not any_variant:  # a new head is what fine-tuning is for: the class count may differ
        from ..convert.edgevit import AUTHORS_FIX
        fix = AUTHORS_FIX if identity and identity.get(PARTIAL) else "build the model they were trained as"
        check_identity(net, identity, source, ignore=("num_classes",), fix=fix + _ANY_VARIANT)
    own = net.state_dict()
    head = [k for k in own if k.startswith(net.classifier_name + ".")]
    weights_classes = head_classes(state, net.classifier_name)
    reset_head = weights_classes is not None and weights_classes != net.num_classes
    missing, unexpected, misshaped = compare_tensors(own, state, head if reset_head else ())
    problems = tensor_problems(missing, unexpected, misshaped)
    if problems and strict:
        raise WeightsError(f"pretrained weights '{source}' do not fit {_describe(net)}: {problems}; "
                           "use weights of this model, or set Global.pretrained_strict=false to load only the "
                           "tensors that fit (the rest keep their initialisation)")
    fits = {k: state[k] for k in own if k in state and list(state[k].shape) == list(own[k].shape)
            and not (reset_head and k in head) and k != IDENTITY_KEY}
    fits = match_dtypes(own, fits, source)
    net.set_state_dict({**own, **{k: v if isinstance(v, paddle.Tensor) else paddle.to_tensor(np.ascontiguousarray(v))
                                  for k, v in fits.items()}})  # the rest as they are: Paddle warns about a gap
    if problems:
        warnings.warn(f"pretrained weights '{source}': loaded {len(fits)} of {len(own)} tensors; skipped (keeping "
                      f"their initialisation): {problems}")
    note = f"; head re-initialised ({weights_classes} -> {net.num_classes} classes)" if reset_head else ""
    return f"pretrained: loaded {len(fits)} of {len(own)} tensors from {source}{note}"
