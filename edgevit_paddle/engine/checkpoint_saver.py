"""``CheckpointSaver``: the one owner of a run's checkpoint set and the order it is committed in (timm's
``CheckpointSaver``), on top of ``checkpoint.py``'s single, kill-safe checkpoint files.

A run's ``checkpoints/`` holds ``epoch_<n>.*`` (every ``save_freq`` epochs and the last, the newest ``keep`` kept),
``best.*`` (the best evaluated weights, raw or EMA), ``interrupted.*`` (Ctrl-C / SIGTERM) and ``latest.json``, the
commit point: it names the checkpoint a resume starts from, and records the run's state (best epoch included).

An epoch is committed in this order: its ``epoch_<n>`` files and its new best (as ``best_pending``), then
``latest.json``, then ``best_pending`` -> ``best`` (renames), then pruning. A stop at any moment leaves ``latest.json``
naming a whole checkpoint and ``best`` as ``latest.json`` records it: ``recover()`` settles a pending best either way,
sweeps temporary files, and falls back to the newest intact checkpoint when ``latest.json`` names a damaged one.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any, Dict, List, Optional

from ..errors import CheckpointError
from ..files import TMP_MARK, write_json_atomic
from .checkpoint import disk_errors, intact_checkpoint, read_json, save_checkpoint
from .run_state import RunState

#: the new best of an epoch, written before that epoch's latest.json and renamed to ``best`` right after it
PENDING_BEST = "best_pending"
LATEST = "latest.json"


def read_latest(ckpt_dir: str) -> Optional[Dict[str, Any]]:
    """What ``ckpt_dir/latest.json`` says (None when it is missing, damaged, or holds a field of the wrong type; see
    ``CheckpointSaver.resume_point``)."""
    latest = read_json(os.path.join(ckpt_dir, LATEST))
    if latest is None or not isinstance(latest.get("checkpoint"), str) or not RunState.well_formed(latest):
        return None
    return latest


class CheckpointSaver:
    """The checkpoint set of one run folder (``<run>/checkpoints``).

    Args:
        ckpt_dir: the checkpoint folder.
        save_freq: save ``epoch_<n>`` every this many epochs (and always at ``total_epochs``).
        keep: how many ``epoch_<n>`` checkpoints to keep (``best`` is kept apart).
        total_epochs: the run's last epoch.
        write: whether this process writes (rank 0 only); the others keep no files.
    """

    def __init__(self, ckpt_dir: str, save_freq: int = 1, keep: int = 2, total_epochs: int = 0, write: bool = True):
        self.dir, self.save_freq, self.keep, self.total_epochs, self.write = ckpt_dir, save_freq, keep, total_epochs, \
            write
        latest = self.read_latest()
        self.last_saved: Optional[str] = latest["checkpoint"] if latest else None

    # -- reading --------------------------------------------------------------------------------------------
    def read_latest(self) -> Optional[Dict[str, Any]]:
        return read_latest(self.dir)

    def resume_point(self) -> Optional[Dict[str, Any]]:
        """The checkpoint a resume starts from: the one ``latest.json`` names when it is intact; else, with a warning,
        the newest intact one (``epoch_<n>`` or ``interrupted``); None when the folder has no checkpoint at all.

        A run killed while writing, or a disk that lost a file, costs at most the epochs after the intact checkpoint."""
        latest = self.read_latest()
        if latest is not None and latest.get("checkpoint"):
            found = intact_checkpoint(self.dir, latest["checkpoint"])
            if found is not None:
                return {**latest, "checkpoint": found["checkpoint"]}
        names = sorted({f[:-5] for f in os.listdir(self.dir) if f.endswith(".json") and TMP_MARK not in f
                        and f[:-5] not in ("latest", "best", PENDING_BEST)}) if os.path.isdir(self.dir) else []
        intact = [m for m in (intact_checkpoint(self.dir, n) for n in names) if m is not None]
        if not intact:
            if latest is None and not os.path.isfile(os.path.join(self.dir, LATEST)):
                return None
            raise CheckpointError(f"no intact checkpoint in '{self.dir}' (latest.json and every epoch_<n> are "
                                  "damaged or missing): start a new run, or restore the files")
        point = max(intact, key=lambda m: (m["epochs_done"], m.get("global_step", 0)))
        why = "is damaged or empty" if latest is None else \
            f"names '{latest['checkpoint']}', which is missing or damaged"
        warnings.warn(f"{os.path.join(self.dir, LATEST)} {why}: resuming from '{point['checkpoint']}', the newest "
                      f"intact checkpoint ({point['epochs_done']} epoch(s) done)")
        return self._with_kept_best(point)

    def _with_kept_best(self, point: Dict[str, Any]) -> Dict[str, Any]:
        """A fallback resume point with the record of ``best``, when an epoch after the point wrote it: those weights
        are kept (the epochs trained again must beat them), and the run's record (``metrics.json``) says so, as
        ``best.json`` does."""
        kept = intact_checkpoint(self.dir, "best")
        if kept is None or int(kept.get("best_epoch", 0)) <= int(point.get("best_epoch", 0)):
            return point
        return {**point, **{k: kept[k] for k in ("best_top1", "best_epoch", "best_from") if k in kept}}

    def last_good(self) -> str:
        """The newest committed checkpoint's prefix, for messages."""
        return os.path.join(self.dir, self.last_saved) if self.last_saved else "none saved yet"

    # -- after a stop -----------------------------------------------------------------------------------------
    def recover(self, latest: Dict[str, Any]) -> List[str]:
        """Make the folder agree with ``latest`` (the resume point) after a stop at any moment: temporary files
        removed, a pending best settled. Returns what was done, as log lines."""
        done = []
        gone = self.remove_temporaries()
        if gone:
            done.append(f"removed {len(gone)} temporary file(s) that an interrupted write left: {', '.join(gone)}")
        settled = self.settle_best(latest)
        if settled:
            done.append(f"{settled} (the run was stopped while saving)")
        return done

    def remove_temporaries(self) -> List[str]:
        """Delete what writes killed before their rename left behind (``*.tmp-<pid>``); returns the names removed."""
        gone = [f for f in os.listdir(self.dir) if TMP_MARK in f] if os.path.isdir(self.dir) else []
        for f in gone:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.dir, f))
        return gone

    def settle_best(self, latest: Dict[str, Any]) -> Optional[str]:
        """A pending best that ``latest`` records is promoted, one it does not record is removed. Returns what was
        done."""
        pending = read_json(os.path.join(self.dir, PENDING_BEST + ".json"))
        if pending is not None and pending.get("best_epoch") == latest.get("best_epoch") and \
                int(pending.get("epochs_done", 0)) <= int(latest.get("epochs_done", 0)):
            self._promote_best()
            return f"promoted the best checkpoint of epoch {pending.get('best_epoch')} that latest.json records"
        for ext in (".pdparams", ".json"):  # unrecorded, or its JSON never finished
            with contextlib.suppress(OSError):
                os.remove(os.path.join(self.dir, PENDING_BEST + ext))
        if pending is None:
            return None
        return f"removed the best checkpoint of epoch {pending.get('best_epoch')}, which latest.json does not record"

    # -- writing ----------------------------------------------------------------------------------------------
    def saves(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based, absolute) writes an ``epoch_<n>`` checkpoint."""
        return epoch % self.save_freq == 0 or epoch == self.total_epochs

    def save_epoch(self, epoch: int, net, optimizer, state: Dict[str, Any], improved: bool, ema=None,
                   best_is_ema: bool = False) -> None:
        """Commit epoch ``epoch``: its checkpoint when ``saves(epoch)``, and ``best`` when ``improved`` (the EMA
        weights when ``best_is_ema``), in the order of the module doc."""
        if not self.write:
            return
        saving = self.saves(epoch)
        if saving:
            save_checkpoint(self.dir, f"epoch_{epoch}", net, optimizer, state, ema=ema)
        if improved:
            with ema.applied(net) if best_is_ema else contextlib.nullcontext():
                save_checkpoint(self.dir, PENDING_BEST, net, None, state)
        if saving:
            self._point_latest(f"epoch_{epoch}", state)
        if improved:
            self._promote_best()
        if saving:
            self.last_saved = f"epoch_{epoch}"
            self._prune()

    def save_interrupted(self, net, optimizer, state: Dict[str, Any], ema=None) -> Optional[str]:
        """On Ctrl-C / SIGTERM: the current weights as ``interrupted``, committed at once. Returns its prefix."""
        if not self.write:
            return None
        prefix = save_checkpoint(self.dir, "interrupted", net, optimizer, state, ema=ema)
        self._point_latest("interrupted", state)
        return prefix

    def _point_latest(self, name: str, state: Dict[str, Any]) -> None:
        """Rewrite ``latest.json``, the commit point: it names ``name``."""
        with disk_errors(self.dir):
            write_json_atomic({**state, "checkpoint": name}, os.path.join(self.dir, LATEST))

    def _promote_best(self) -> None:
        """``best_pending.*`` -> ``best.*`` (two renames: microseconds, against the seconds a write takes)."""
        for ext in (".pdparams", ".json"):
            src = os.path.join(self.dir, PENDING_BEST + ext)
            if os.path.exists(src):
                os.replace(src, os.path.join(self.dir, "best" + ext))

    def _prune(self) -> None:
        """Delete the oldest ``epoch_<n>`` checkpoints beyond the newest ``keep``."""
        epochs = sorted({int(f.split("_")[1].split(".")[0]) for f in os.listdir(self.dir)
                         if f.startswith("epoch_") and f.endswith(".json") and TMP_MARK not in f})
        for n in epochs[:-self.keep] if self.keep > 0 else []:
            for ext in (".pdparams", ".pdopt", ".pdema", ".json"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.dir, f"epoch_{n}{ext}"))
