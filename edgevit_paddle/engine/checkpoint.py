"""Checkpoints that a kill can never tear: every file is written under a temporary name, then renamed.

A checkpoint ``<dir>/<name>`` is ``<name>.pdparams`` (weights), ``<name>.pdopt`` (optimizer with its LR
schedule) and ``<name>.json`` (epoch, step, metrics, and the weights' ``identity``, see ``weights.py``).
``latest.json`` is rewritten last and points at the newest complete checkpoint, so resuming always finds a whole one.
"""
from __future__ import annotations

import contextlib
import json
import os
import warnings
from typing import Any, Dict, List, Optional

import paddle

from ..errors import CheckpointError
from ..weights import load_weights

TMP_MARK = ".tmp-"


@contextlib.contextmanager
def _temporary(path: str):
    """A temporary name beside ``path``, renamed over it when the block succeeds and removed when it fails (a full
    disk leaves no 15 MB orphan behind)."""
    tmp = f"{path}{TMP_MARK}{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_save(obj: Any, path: str) -> None:
    """``paddle.save`` to ``path`` via a temporary file and a rename."""
    with _temporary(path) as tmp:
        paddle.save(obj, tmp)


def atomic_write_json(data: Dict[str, Any], path: str) -> None:
    with _temporary(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())


def remove_temporaries(ckpt_dir: str) -> List[str]:
    """Delete what writes killed before their rename left behind (``*.tmp-<pid>``); returns the names removed."""
    gone = [f for f in os.listdir(ckpt_dir) if TMP_MARK in f] if os.path.isdir(ckpt_dir) else []
    for f in gone:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(ckpt_dir, f))
    return gone


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
        if isinstance(getattr(optimizer, "_learning_rate", None), paddle.optimizer.lr.LinearWarmup):
            # LinearWarmup stores its inner schedule beside its own keys and restores both, but the base class
            # still warns about "unused values"; nothing is unused
            warnings.filterwarnings("ignore", message="There are some unused values in state_dict")
        optimizer.set_state_dict(_rename_keys(state, mapping))


def load_checkpoint(prefix: str, network, optimizer=None, weights_only: bool = False) -> None:
    """Restore weights, and unless ``weights_only`` the optimizer with its LR schedule, from ``prefix.*``.

    A missing ``.pdopt`` is refused: resuming without it would silently restart the optimizer and the schedule."""
    if optimizer is not None and not weights_only and not os.path.isfile(prefix + ".pdopt"):
        raise CheckpointError(f"'{prefix}.pdopt' is missing: the optimizer state and LR schedule cannot be restored; "
                              "restore the file, or resume with --weights-only to restart them from the config")
    network.set_state_dict(load_weights(prefix))
    if optimizer is not None and not weights_only:
        load_optimizer_state(network, optimizer, paddle.load(prefix + ".pdopt"))


def save_checkpoint(ckpt_dir: str, name: str, network, optimizer, state: Dict[str, Any],
                    update_latest: bool = True) -> str:
    """Save weights, optimizer and ``state`` as ``ckpt_dir/name.*``; then point ``latest.json`` at it."""
    os.makedirs(ckpt_dir, exist_ok=True)
    prefix = os.path.join(ckpt_dir, name)
    atomic_save(network.state_dict(), prefix + ".pdparams")
    if optimizer is not None:
        atomic_save(optimizer_state(network, optimizer), prefix + ".pdopt")
    atomic_write_json({**state, "checkpoint": name}, prefix + ".json")
    if update_latest:
        atomic_write_json({**state, "checkpoint": name}, os.path.join(ckpt_dir, "latest.json"))
    return prefix


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    """A JSON object from ``path``, or None when it is missing, empty or damaged."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_latest(ckpt_dir: str) -> Optional[Dict[str, Any]]:
    """What ``latest.json`` says (None when it is missing or damaged; see ``resume_checkpoint``)."""
    return _read_json(os.path.join(ckpt_dir, "latest.json"))


def _intact(ckpt_dir: str, name: str) -> Optional[Dict[str, Any]]:
    """The state of checkpoint ``name`` when its JSON reads and its weights load; else None."""
    meta = _read_json(os.path.join(ckpt_dir, name + ".json"))
    if meta is None or "epochs_done" not in meta:
        return None
    try:
        paddle.load(os.path.join(ckpt_dir, name + ".pdparams"))
    except Exception:  # missing or truncated: Paddle raises several kinds
        return None
    return {**meta, "checkpoint": name}


def resume_checkpoint(ckpt_dir: str) -> Optional[Dict[str, Any]]:
    """The checkpoint a resume starts from: the one ``latest.json`` names when it is intact; else, with a warning,
    the newest intact one (``epoch_<n>`` or ``interrupted``); None when the folder has no checkpoint at all.

    A run killed while writing, or a disk that lost a file, costs at most the epochs after the intact checkpoint."""
    latest = read_latest(ckpt_dir)
    if latest is not None and latest.get("checkpoint"):
        found = _intact(ckpt_dir, latest["checkpoint"])
        if found is not None:
            return {**latest, "checkpoint": found["checkpoint"]}
    names = sorted({f[:-5] for f in os.listdir(ckpt_dir) if f.endswith(".json") and f != "latest.json"
                    and TMP_MARK not in f and f != "best.json"}) if os.path.isdir(ckpt_dir) else []
    intact = [m for m in (_intact(ckpt_dir, n) for n in names) if m is not None]
    if not intact:
        if latest is None and not os.path.isfile(os.path.join(ckpt_dir, "latest.json")):
            return None
        raise CheckpointError(f"no intact checkpoint in '{ckpt_dir}' (latest.json and every epoch_<n> are damaged "
                              "or missing): start a new run, or restore the files")
    best = max(intact, key=lambda m: (m["epochs_done"], m.get("global_step", 0)))
    why = "is damaged or empty" if latest is None else f"names '{latest['checkpoint']}', which is missing or damaged"
    warnings.warn(f"{os.path.join(ckpt_dir, 'latest.json')} {why}: resuming from '{best['checkpoint']}', the newest "
                  f"intact checkpoint ({best['epochs_done']} epoch(s) done)")
    return best


def prune(ckpt_dir: str, keep: int) -> None:
    """Delete the oldest ``epoch_<n>`` checkpoints beyond the newest ``keep``."""
    epochs = sorted({int(f.split("_")[1].split(".")[0]) for f in os.listdir(ckpt_dir)
                     if f.startswith("epoch_") and f.endswith(".json")})
    for n in epochs[:-keep] if keep > 0 else []:
        for ext in (".pdparams", ".pdopt", ".json"):
            p = os.path.join(ckpt_dir, f"epoch_{n}{ext}")
            if os.path.exists(p):
                os.remove(p)
