"""Weights files and what they are: load a ``.pdparams``, read the identity saved beside it, refuse weights that do
not fit the model they are loaded into.

A checkpoint ``<prefix>.pdparams`` has a ``<prefix>.json`` beside it whose ``identity`` is the model's
``default_cfg.identity()``: the registered name and every architecture argument (norm, ffn, ...) and the class count.
Weights of another variant can have the same keys and shapes (GroupNorm and LayerNorm weights do), so the identity,
not the shapes, is what tells them apart. The identity is also stored inside every ``.pdparams`` we write (under
``__identity__``, which ``set_state_dict`` ignores), so a bare weights file copied on its own is checked too.
"""
from __future__ import annotations

import json
import os
import pickle
from typing import Any, Collection, Dict, List, Optional, Tuple

import numpy as np
import paddle
import paddle.nn as nn

from . import safe_load
from .errors import MissingFileError, WeightsError, first_line
from .model_cfg import CLASSIFIER, identity_diff
from .safe_load import IDENTITY_KEY, SAFETENSORS


def with_identity(state: Dict[str, Any], identity: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """``state`` (a ``state_dict``) with ``identity`` (``model_identity(net)``) in it, for ``paddle.save``: the one
    way an identity gets into a weights file (checkpoints, the converter)."""
    return {**state, IDENTITY_KEY: identity} if identity else dict(state)


#: the weights formats read, in the order a bare prefix ``x`` is tried
WEIGHTS_EXTENSIONS = (".pdparams", SAFETENSORS)


def weights_prefix(path: str) -> str:
    """``x.pdparams``, ``x.safetensors`` or ``x`` -> ``x``."""
    for ext in WEIGHTS_EXTENSIONS:
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def weights_file(path: str) -> str:
    """The file ``path`` stands for: itself when it names one, else ``path.pdparams``, else ``path.safetensors``; a
    one-line error when there is none."""
    if path.endswith(WEIGHTS_EXTENSIONS) and os.path.isfile(path):
        return path
    for ext in WEIGHTS_EXTENSIONS:
        if os.path.isfile(weights_prefix(path) + ext):
            return weights_prefix(path) + ext
    raise MissingFileError(f"no weights at '{path}': give a .pdparams or .safetensors file or a checkpoint prefix "
                           "such as output/<run>/checkpoints/best")


#: what reading a missing, empty, truncated or garbled weights or checkpoint file raises (``safe_load.load``, as
#: ``paddle.load``: ValueError "can not parse the file", "not exists"; EOFError and UnpicklingError from the pickle)
DAMAGED_FILE_ERRORS = (ValueError, EOFError, OSError, pickle.UnpicklingError)


def load_weights(path: str) -> Dict[str, Any]:
    """Weights from a ``.pdparams``/``.safetensors`` file or a checkpoint prefix, read without running anything the
    file carries (``safe_load``)."""
    file = weights_file(path)
    try:
        return safe_load.load(file)
    except DAMAGED_FILE_ERRORS as e:
        if isinstance(e, WeightsError):
            raise
        raise WeightsError(f"cannot read the weights '{file}' ({type(e).__name__}: {first_line(e, 120)}): the file is "
                           "damaged or not a weights file; give an intact one") from None


def save_weights(state: Dict[str, Any], path: str, identity: Optional[Dict[str, Any]] = None) -> None:
    """Write ``state`` (a ``state_dict``) with its ``identity`` to ``path``: ``.safetensors`` (pickle-free, what to
    share) or ``.pdparams`` (Paddle's format), whole or not at all."""
    from .files import atomic_path
    with atomic_path(path) as tmp:
        if path.endswith(SAFETENSORS):
            from safetensors.numpy import save_file
            arrays = {k: np.ascontiguousarray(v.numpy() if hasattr(v, "numpy") else np.asarray(v))
                      for k, v in state.items() if k != IDENTITY_KEY}
            save_file(arrays, tmp, metadata={IDENTITY_KEY: json.dumps(identity)} if identity else None)
        else:
            paddle.save(with_identity(state, identity), tmp)


def identity_in(meta: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The identity in a checkpoint's JSON (``<prefix>.json`` or ``latest.json``), or None.

    Checkpoints written before identities were stored hold the config's ``Model`` section instead; it is returned
    as ``{"__model_section__": {...}}`` for ``check_identity`` to resolve.
    """
    if meta.get("identity"):
        return meta["identity"]
    return {"__model_section__": meta["model"]} if meta.get("model") else None


def saved_identity(path: str, state: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """The identity of weights: from ``<prefix>.json`` beside them, else from inside them (``state``); None when
    neither has one (weights from elsewhere: only their shapes can be checked)."""
    meta = weights_prefix(path) + ".json"
    if os.path.isfile(meta):
        with open(meta, encoding="utf-8") as f:
            found = identity_in(json.load(f))
        if found:
            return found
    inside = (state or {}).get(IDENTITY_KEY)
    if isinstance(inside, str):  # a .safetensors file's metadata holds it as JSON
        try:
            inside = json.loads(inside)
        except ValueError:
            return None
    return inside if isinstance(inside, dict) else None


def model_identity(net: nn.Layer) -> Dict[str, Any]:
    """What ``net``'s weights are (see ``ModelCfg.identity``)."""
    return net.default_cfg.identity(net.num_classes)


def resolved_identity(saved: Dict[str, Any], net: nn.Layer) -> Dict[str, Any]:
    """``saved`` as an identity (an old checkpoint's ``Model`` section resolved by building its model)."""
    section = saved.get("__model_section__")
    if section is None:
        return saved
    from .registry import create_model  # an old checkpoint: build its model to learn its identity
    kwargs = {k: v for k, v in section.items() if k != "name"}
    kwargs.setdefault("in_chans", net.in_chans)
    kwargs.setdefault("num_classes", net.num_classes)
    return model_identity(create_model(section["name"], **kwargs))


#: an identity key saying that only the keys given are known (the authors' weights: their variant, nothing else)
PARTIAL = "__partial__"

#: the fix a refusal names when the caller gives none
USE_RUN_CONFIG = "use the run's config.yaml"


def identity_problem(net: nn.Layer, saved: Optional[Dict[str, Any]], ignore: Collection[str] = ()) -> Optional[str]:
    """How weights with identity ``saved`` differ from ``net`` (``Model.norm: 'gn' in the weights, 'ln' in the
    config, ...``), leaving out ``ignore``; None when they fit or nothing is known about them. A ``PARTIAL`` identity
    is compared on its own keys only."""
    if not saved:
        return None
    wanted = model_identity(net)
    if saved.get(PARTIAL):
        saved = {k: v for k, v in saved.items() if k != PARTIAL}
        wanted = {k: wanted.get(k, net.default_cfg.variant.get(k)) for k in saved}
    else:
        saved = resolved_identity(saved, net)
    diff = {k: ab for k, ab in identity_diff(saved, wanted).items() if k not in ignore}
    if not diff:
        return None
    return ", ".join(f"{'Model.name' if k == 'model' else 'Model.' + k}: {a!r} in the weights, {b!r} in the config"
                     for k, (a, b) in diff.items())


def check_identity(net: nn.Layer, saved: Optional[Dict[str, Any]], source: str, ignore: Collection[str] = (),
                   fix: str = USE_RUN_CONFIG) -> None:
    """Refuse weights saved from another model or variant than ``net`` with one line naming every difference and
    ``fix``; ``ignore``: identity keys that may differ (a fine-tune's class count)."""
    problem = identity_problem(net, saved, ignore)
    if problem:
        raise WeightsError(f"weights '{source}' do not fit this config: {problem}; {fix}")


def load_fitting_weights(net: nn.Layer, state: Dict[str, Any], source: str) -> None:
    """Set ``state`` on ``net`` after checking every tensor is there with its shape; else a one-line error."""
    state = {k: v for k, v in state.items() if k != IDENTITY_KEY}
    missing, _, misshaped = compare_tensors(net.state_dict(), state)  # extra tensors are ignored, as Paddle does
    if missing or misshaped:
        what = f"{net.model_name} ({net.default_cfg.variant_label()})" if net.default_cfg.variant else net.model_name
        raise WeightsError(f"weights '{source}' do not fit {what}: {tensor_problems(missing, [], misshaped, limit=5)}; "
                           "use the run's config.yaml")
    net.set_state_dict(match_dtypes(net.state_dict(), state, source))


#: the floating dtypes weights are stored in (any of them casts to the model's)
_FLOATS = ("float16", "bfloat16", "float32", "float64")


def _dtype(value: Any) -> str:
    """A tensor's or array's dtype name (``float32``), read without copying it."""
    return str(value.dtype).rsplit(".", 1)[-1]


def match_dtypes(own: Dict[str, Any], state: Dict[str, Any], source: str) -> Dict[str, Any]:
    """``state`` with each tensor in the dtype of the model's own: floating weights of another precision (float16,
    float64: what saving in half or double precision gives) are cast, with a warning saying so; any other dtype
    (integers where the model has floats) is a one-line error naming the tensors."""
    import warnings
    out, cast, wrong = dict(state), [], []
    for k, v in state.items():
        if k not in own or k == IDENTITY_KEY:
            continue
        have, want = _dtype(v), _dtype(own[k])
        if have == want:
            continue
        if have in _FLOATS and want in _FLOATS:
            out[k] = paddle.cast(v if isinstance(v, paddle.Tensor) else paddle.to_tensor(v), want)
            cast.append(have)
        else:
            wrong.append(f"{k} ({have}, the model's is {want})")
    if wrong:
        raise WeightsError(f"weights '{source}' hold {len(wrong)} tensor(s) of a dtype the model cannot take: "
                           f"{', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}; give floating-point weights")
    if cast:
        warnings.warn(f"weights '{source}': {len(cast)} tensor(s) stored as {', '.join(sorted(set(cast)))} cast to "
                      "the model's dtype")
    return out


def head_classes(state: Dict[str, Any], classifier: str = CLASSIFIER) -> Optional[int]:
    """The class count of weights, from their classifier (``head``, a Linear [in, out], in every model here)."""
    head = state.get(f"{classifier}.weight")
    return int(head.shape[1]) if head is not None and len(head.shape) == 2 else None


def compare_tensors(own: Dict[str, Any], state: Dict[str, Any], skip: Collection[str] = ()
                    ) -> Tuple[List[str], List[str], List[str]]:
    """(missing, unexpected, mis-shaped) tensor names of ``state`` against a model's ``own`` state dict, leaving out
    ``skip`` (a head being replaced) and the identity entry."""
    missing = sorted(k for k in own if k not in state and k not in skip)
    unexpected = sorted(k for k in state if k not in own and k != IDENTITY_KEY)
    misshaped = [f"{k}: weights {list(state[k].shape)} vs model {list(own[k].shape)}" for k in sorted(own)
                 if k in state and k not in skip and list(state[k].shape) != list(own[k].shape)]
    return missing, unexpected, misshaped


def tensor_problems(missing: List[str], unexpected: List[str], misshaped: List[str],
                    limit: Optional[int] = None) -> str:
    """``compare_tensors``' findings in one line (empty when there are none); ``limit`` names at most that many of
    each kind."""
    def names(items: List[str], sep: str) -> str:
        shown = items if limit is None else items[:limit]
        return sep.join(shown) + (" ..." if len(shown) < len(items) else "")

    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {names(missing, ', ')}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {names(unexpected, ', ')}")
    if misshaped:
        parts.append(f"shape mismatches ({len(misshaped)}): {names(misshaped, '; ')}")
    return " | ".join(parts)
