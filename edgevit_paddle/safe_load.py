"""Reading weights files from strangers without running their code.

``paddle.load`` unpickles, and a pickle can call any function it names: a crafted ``.pdparams`` runs what it carries
the moment it is loaded. Every weights file this package reads (``.pdparams``, ``.pdopt``, ``.pdema``; a
``Global.pretrained_model``, ``--weights``, ``--resume``, an exported folder's source checkpoint) goes through
``load`` here instead:

- ``.safetensors`` (pickle-free: a JSON header and raw arrays) is read with ``safetensors.numpy``;
- a Paddle pickle is read by an unpickler that admits only what ``paddle.save`` writes for weights, optimizer and
  schedule states: Python's containers and scalars and NumPy arrays (``numpy.ndarray``, ``numpy.dtype`` and
  NumPy's array reconstructor). Any other global a file names (``os.system``, ``builtins.eval``, a class) is refused
  before anything runs, with one line naming the file and what it asked for.

What comes back is what ``paddle.load`` gives: arrays as ``paddle.Tensor`` (``return_numpy=True``: as NumPy
arrays), in the same nesting.
"""
from __future__ import annotations

import os
import pickle
from typing import Any, Dict, Optional

import numpy as np

from .errors import WeightsError, raised_in_our_code

#: the globals a weights pickle may name: NumPy's array reconstruction (both module spellings: NumPy 2 writes
#: ``numpy._core``, NumPy 1 ``numpy.core``) and its scalars; ``collections.OrderedDict`` (old state dicts)
ALLOWED_GLOBALS = frozenset({
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
})

#: the extension of the pickle-free format
SAFETENSORS = ".safetensors"
#: the entry under which weights carry their identity (a ``.pdparams`` key, a ``.safetensors`` metadata entry)
IDENTITY_KEY = "__identity__"


class UnsafeWeights(pickle.UnpicklingError):
    """A weights file names a global outside ``ALLOWED_GLOBALS`` (it would run code)."""


class _WeightsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafeWeights(f"{module}.{name}")


def load(path: str, return_numpy: bool = False) -> Any:
    """The contents of the weights file ``path`` (see module doc). A file that would run code is a ``WeightsError``;
    a damaged one raises what ``paddle.load`` raises for it (``ValueError``, ``EOFError``, ``pickle.UnpicklingError``,
    ``OSError``), for the caller's damage handling."""
    if path.endswith(SAFETENSORS):
        return _load_safetensors(path, return_numpy)
    if not os.path.isfile(path):
        raise ValueError(f"{path} not exists")  # paddle.load's wording, so callers handle both alike
    with open(path, "rb") as f:
        try:
            obj = _WeightsUnpickler(f, encoding="latin1").load()
        except UnsafeWeights as e:
            raise WeightsError(f"'{path}' is not a plain weights file: it asks to run {e} when loaded; refused, "
                               "nothing of it ran. Load only weights you trust, or ask for the .safetensors file"
                               ) from None
        except (AttributeError, ImportError, IndexError, KeyError, TypeError, OverflowError, MemoryError) as e:
            # what a garbled pickle raises on the way (a bad opcode argument, a memo miss); the same types raised by
            # our own code under the unpickler (find_class) are bugs
            if raised_in_our_code(e):
                raise
            raise pickle.UnpicklingError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    try:
        return _as_paddle(_unpack_big(obj), return_numpy)
    except RecursionError:
        raise pickle.UnpicklingError(f"cannot read {path}: its contents are nested too deeply for weights") from None


def _load_safetensors(path: str, return_numpy: bool) -> dict:
    """The arrays of a ``.safetensors`` file, and its identity (a metadata entry, a string) under ``IDENTITY_KEY``
    unless a tensor has that name; other metadata is not read (it could name a tensor)."""
    from safetensors import SafetensorError, safe_open
    if not os.path.isfile(path):
        raise ValueError(f"{path} not exists")
    try:
        with safe_open(path, framework="numpy") as f:
            out = {k: f.get_tensor(k) for k in f.keys()}
            identity = (f.metadata() or {}).get(IDENTITY_KEY)
            if isinstance(identity, str) and IDENTITY_KEY not in out:
                out[IDENTITY_KEY] = identity
    except SafetensorError as e:
        raise ValueError(f"cannot parse the file {path}: {e}") from None
    return _as_paddle(out, return_numpy)


def _unpack_big(obj: Any) -> Any:
    """Arrays over 4 GB that ``paddle.save`` split into slices (``UnpackBigParamInfor@@``), joined again; the
    parameter-name table it adds to a state dict dropped (as ``paddle.load`` does)."""
    if isinstance(obj, dict):
        obj.pop("StructuredToParameterName@@", None)
    if not isinstance(obj, dict) or "UnpackBigParamInfor@@" not in obj:
        return obj
    info = obj.pop("UnpackBigParamInfor@@")
    for key, spec in info.items():
        parts = [obj.pop(name) for name in spec["slices"]]
        obj[key] = np.concatenate(parts).reshape(spec["OriginShape"])
    return obj


def _as_paddle(obj: Any, return_numpy: bool, seen: Optional[Dict[int, Any]] = None) -> Any:
    """Arrays as tensors, through the containers; a container met twice is converted once (a pickle can share one
    object a billion times over: its paths are not walked one by one)."""
    seen = {} if seen is None else seen
    if id(obj) in seen:
        return seen[id(obj)]
    if isinstance(obj, np.ndarray):
        if return_numpy:
            return obj
        import paddle
        out: Any = paddle.to_tensor(obj)
    elif isinstance(obj, dict):
        out = type(obj)()
        seen[id(obj)] = out
        for k, v in obj.items():
            out[k] = _as_paddle(v, return_numpy, seen)
    elif isinstance(obj, (list, tuple)):
        out = type(obj)(_as_paddle(v, return_numpy, seen) for v in obj)
    else:
        return obj
    seen[id(obj)] = out
    return out
