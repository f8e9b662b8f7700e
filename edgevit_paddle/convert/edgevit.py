"""Load the EdgeViT authors' PyTorch ``state_dict`` into our ``norm="ln", ffn="linear"`` model.

Key mapping (authors' -> ours): ``patch_embed{i}.`` -> ``stages.{i-1}.patch_embed.``,
``blocks{i}.{j}.LocalAgg.`` -> ``stages.{i-1}.blocks.{j}.local_agg.``, ``...SelfAttn.`` -> ``...self_attn.``,
``attn.LocalProp.`` -> ``attn.local_prop.``, BatchNorm ``running_mean``/``running_var`` -> ``_mean``/``_variance``
(``num_batches_tracked`` has no Paddle counterpart and is dropped). Linear weights are transposed ([out, in] in
PyTorch, [in, out] in Paddle); convolution and transposed-convolution weights have the same layout in both.
"""
from __future__ import annotations

import os
import re
import zipfile
from typing import Any, Dict, Mapping, Union

import numpy as np
import paddle
import paddle.nn as nn

from ..errors import MissingFileError, WeightsError, first_line
from ..models.edgevit import AUTHORS_VARIANT
from ..paddle_compat import BATCH_NORM_STATE_NAMES
from ..weights import PARTIAL, check_identity, compare_tensors, tensor_problems

_RULES = [
    (re.compile(r"^patch_embed(\d)\."), lambda m: f"stages.{int(m.group(1)) - 1}.patch_embed."),
    (re.compile(r"^blocks(\d)\.(\d+)\.LocalAgg\."),
     lambda m: f"stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.local_agg."),
    (re.compile(r"^blocks(\d)\.(\d+)\.SelfAttn\."),
     lambda m: f"stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.self_attn."),
    (re.compile(r"\.attn\.LocalProp\."), lambda m: ".attn.local_prop."),
    *((re.compile(rf"\.{theirs}$"), lambda m, ours=ours: "." + ours)
      for theirs, ours in BATCH_NORM_STATE_NAMES.items()),
]


def map_original_key(key: str) -> str:
    """Our parameter name for one of the authors' ``state_dict`` keys."""
    for pattern, repl in _RULES:
        key = pattern.sub(repl, key)
    return key


def read_state_dict(src: Union[str, os.PathLike, Mapping]) -> Dict[str, np.ndarray]:
    """Arrays by original key from a ``.pth``/``.pt`` file (needs torch), an ``.npz`` file or a dict of arrays.

    Entries whose names start with ``__`` (reference outputs stored beside the weights) are ignored.
    """
    if isinstance(src, Mapping):
        items = dict(src)
    else:
        path = os.fspath(src)
        if not os.path.isfile(path):
            raise MissingFileError(f"no weights file at '{path}': give a .pth/.pt or .npz of the authors' state_dict")
        if path.endswith(".npz"):
            try:
                with np.load(path, allow_pickle=False) as data:  # an object array would need a pickle: refused
                    items = {k: data[k] for k in data.files}
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise WeightsError(f"cannot read '{path}' as an .npz of arrays ({first_line(e, 120)}): "
                                   "save the state_dict as plain numpy arrays (np.savez)") from None
        elif path.endswith((".pth", ".pt", ".bin")):
            try:
                import torch
            except ImportError as e:
                raise WeightsError(f"reading '{path}' needs torch (`pip install torch`); or save the state_dict as "
                                   "an .npz of numpy arrays") from e
            items = torch.load(path, map_location="cpu", weights_only=True)
            for wrapper in ("model", "state_dict", "model_ema"):
                if isinstance(items, Mapping) and wrapper in items and isinstance(items[wrapper], Mapping):
                    items = items[wrapper]
                    break
        else:
            raise WeightsError(f"unknown weights format '{path}': expected .pth, .pt or .npz")
    out = {}
    for k, v in items.items():
        if k.startswith("__"):
            continue
        out[k] = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
    return out


#: what a refusal of the authors' weights for another variant says to do
AUTHORS_FIX = ("the authors' weights fit the original configuration only: build the model with " +
               " and ".join(f"Model.{k}={v}" for k, v in AUTHORS_VARIANT.items()))


def authors_identity() -> Dict[str, Any]:
    """What is known of the authors' weights: their variant (a ``PARTIAL`` identity, see ``weights.py``)."""
    return {PARTIAL: True, **AUTHORS_VARIANT}


def to_our_keys(items: Mapping[str, np.ndarray], model: nn.Layer) -> Dict[str, np.ndarray]:
    """The authors' arrays under our names, with the weights of what is a ``Linear`` in ``model`` transposed
    (``num_batches_tracked`` dropped)."""
    linear_weights = {f"{name}.weight" for name, layer in model.named_sublayers() if isinstance(layer, nn.Linear)}
    out = {}
    for key, value in items.items():
        if key.endswith("num_batches_tracked"):
            continue
        ours = map_original_key(key)
        out[ours] = value.T if ours in linear_weights and value.ndim == 2 else value
    return out


def load_original(model: nn.Layer, src: Union[str, os.PathLike, Mapping]) -> nn.Layer:
    """Load the authors' EdgeViT weights into ``model`` (built with ``norm="ln", ffn="linear"``) and return it.

    Raises:
        WeightsError: the model is not the original configuration, or keys are missing/unexpected, or shapes differ
            (every problem is listed).
    """
    check_identity(model, authors_identity(), str(src) if isinstance(src, (str, os.PathLike)) else "given",
                   fix=AUTHORS_FIX)
    target = model.state_dict()
    source = to_our_keys(read_state_dict(src), model)
    problems = tensor_problems(*compare_tensors(target, source))
    if problems:
        raise WeightsError("the weights do not fit this model — " + problems +
                           " (is it the right preset, and num_classes/in_chans as in the weights?)")
    converted = {k: np.ascontiguousarray(v).astype(target[k].numpy().dtype) for k, v in source.items()}
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in converted.items()})
    return model
