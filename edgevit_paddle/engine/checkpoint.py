"""Checkpoints that a kill can never tear: every file is written under a temporary name, then renamed.

A checkpoint ``<dir>/<name>`` is ``<name>.pdparams`` (weights), ``<name>.pdopt`` (optimizer with its LR
schedule), ``<name>.pdema`` (the weights' moving average, with ``EMA.decay``) and ``<name>.json`` (epoch, step,
metrics, and the weights' ``identity``, see ``weights.py``).
Each file is written whole or not at all; which checkpoints make up a run, and the order they are committed in
(``latest.json``), is ``checkpoint_saver.CheckpointSaver``'s.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import warnings
from typing import Any, Dict, Optional

import paddle

from .. import safe_load
from ..errors import CheckpointError, WeightsError
from ..files import atomic_path, write_json_atomic
from ..paddle_compat import lr_schedule
from ..weights import DAMAGED_FILE_ERRORS, load_weights, with_identity
from .run_state import RunState


@contextlib.contextmanager
def disk_errors(folder: str, need_bytes: int = 0):
    """Within the block, a full disk or a read-only ``folder`` becomes a one-line ``CheckpointError``; other
    ``OSError``s keep their traceback."""
    try:
        yield
    except OSError as e:
        err = disk_error(e, folder, need_bytes)
        if err is None:
            raise
        raise err from None


def disk_error(e: OSError, folder: str, need_bytes: int = 0) -> Optional[CheckpointError]:
    """A full disk or a read-only folder as a one-line error naming the folder and the fix (None for other
    errors, which keep their traceback)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(folder if os.path.isdir(folder) else os.path.dirname(folder) or ".").free
        except OSError:
            free = 0
        return CheckpointError(f"no space left in '{folder}': a checkpoint needs about {need_bytes / 2**20:.0f} MB, "
                               f"{free / 2**20:.0f} MB are free; free space (or set Global.output_dir elsewhere) and "
                               "resume: the earlier checkpoints are intact")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return CheckpointError(f"cannot write in '{folder}' ({e.strerror}): set Global.output_dir to a writable "
                               "folder")
    return None


def atomic_save(obj: Any, path: str) -> None:
    """``paddle.save`` to ``path``, whole or not at all (``files.atomic_path``)."""
    with atomic_path(path) as tmp:
        paddle.save(obj, tmp)


def _rename_keys(state: Dict[str, Any], mapping: Dict[str, str]) -> Dict[str, Any]:
    """Rename optimizer-state keys ``<param name>_<accumulator>`` through ``mapping`` (nested dicts too)."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            value = _rename_keys(value, mapping)
        new = mapping.get(key)
        if new is None:
            for old, repl in mapping.items():
                if key.startswith(old + "_"):
                    new = repl + key[len(old):]
                    break
        out[new or key] = value
    return out


def optimizer_state(network, optimizer) -> Dict[str, Any]:
    """The optimizer's state with accumulators keyed by structured parameter names (``stages.0....weight``).

    Paddle keys them by the parameters' unique internal names (``conv2d_124.w_0``), which depend on how many layers
    the process created before; structured names make a checkpoint loadable in any process.
    """
    mapping = {p.name: f"@{n}" for n, p in network.named_parameters()}
    return _rename_keys(optimizer.state_dict(), mapping)


def load_optimizer_state(network, optimizer, state: Dict[str, Any]) -> None:
    mapping = {f"@{n}": p.name for n, p in network.named_parameters()}
    with warnings.catch_warnings():
        if isinstance(lr_schedule(optimizer), paddle.optimizer.lr.LinearWarmup):
            # LinearWarmup stores its inner schedule beside its own keys and restores both, but the base class
            # still warns about "unused values"; nothing is unused
            warnings.filterwarnings("ignore", message="There are some unused values in state_dict")
        optimizer.set_state_dict(_rename_keys(state, mapping))


def load_checkpoint(prefix: str, network, optimizer=None, weights_only: bool = False, ema=None) -> None:
    """Restore weights, and unless ``weights_only`` the optimizer with its LR schedule and the EMA (``ema``, a
    ``ModelEMA``), from ``prefix.*``.

    A missing ``.pdopt`` or ``.pdema`` is refused: resuming without it would silently restart the optimizer and the
    schedule, or the moving average (``weights_only`` restarts them: the EMA from the weights)."""
    parts = ((".pdopt", optimizer, "the optimizer state and LR schedule"), (".pdema", ema, "the EMA weights"))
    for ext, what in ((ext, what) for ext, obj, what in parts if obj is not None and not weights_only):
        if not os.path.isfile(prefix + ext):
            raise CheckpointError(f"'{prefix}{ext}' is missing: {what} cannot be restored; restore the file, or "
                                  "resume with --weights-only to restart them from the config")
    network.set_state_dict(load_weights(prefix))
    if optimizer is not None and not weights_only:
        load_optimizer_state(network, optimizer, safe_load.load(prefix + ".pdopt"))
    if ema is not None:
        ema.set_state_dict(network.state_dict() if weights_only else safe_load.load(prefix + ".pdema"))


def save_checkpoint(ckpt_dir: str, name: str, network, optimizer, state: Dict[str, Any], ema=None) -> str:
    """Save weights, optimizer, EMA (``ema``) and ``state`` as ``ckpt_dir/name.*`` (``latest.json`` is the saver's).

    A full disk or a read-only folder is a ``CheckpointError`` (one line); what was saved before stays intact."""
    prefix = os.path.join(ckpt_dir, name)
    weights = network.state_dict()
    need = sum(int(v.numel()) * 4 for v in weights.values()) * (1 + 2 * (optimizer is not None) + (ema is not None))
    weights = with_identity(weights, state.get("identity"))
    with disk_errors(ckpt_dir, need):
        os.makedirs(ckpt_dir, exist_ok=True)
        atomic_save(weights, prefix + ".pdparams")
        if optimizer is not None:
            atomic_save(optimizer_state(network, optimizer), prefix + ".pdopt")
        if ema is not None:
            atomic_save(ema.state_dict(), prefix + ".pdema")
        write_json_atomic({**state, "checkpoint": name}, prefix + ".json")
    return prefix


def read_json(path: str) -> Optional[Dict[str, Any]]:
    """A JSON object from ``path``, or None when it is missing, empty or damaged."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


#: a checkpoint's files that hold arrays: the weights (always there), and the optimizer state and EMA weights when
#: the run keeps them (one that is missing is refused by ``load_checkpoint``, with the way out)
ARRAY_PARTS = (".pdparams", ".pdopt", ".pdema")


def intact_checkpoint(ckpt_dir: str, name: str) -> Optional[Dict[str, Any]]:
    """The state of checkpoint ``name`` when its JSON reads and each of its array files loads; else None. A file that
    would run code is refused (``WeightsError``), not taken for damage."""
    meta = read_json(os.path.join(ckpt_dir, name + ".json"))
    if meta is None or not RunState.well_formed(meta):
        return None
    for ext in ARRAY_PARTS:
        path = os.path.join(ckpt_dir, name + ext)
        if ext != ".pdparams" and not os.path.exists(path):
            continue
        try:
            safe_load.load(path, return_numpy=True)
        except WeightsError:
            raise
        except DAMAGED_FILE_ERRORS:  # missing, empty, truncated or garbled; a bug in the caller keeps its traceback
            return None
    return {**meta, "checkpoint": name}
