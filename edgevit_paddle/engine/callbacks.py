"""hapi callbacks of a training run: VisualDL curves, epoch log lines, checkpoints, metrics.json and the NaN stop.

``paddle.Model.fit`` has no start epoch, so a resumed run calls ``fit`` for the remaining epochs and these callbacks
carry the absolute epoch and step (``RunState``): checkpoint names, log lines and the VisualDL curves continue the
original run (VisualDL appends to the run's existing record file).
"""
from __future__ import annotations

import glob
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import paddle

from ..errors import TrainingError
from .checkpoint import (
    PENDING_BEST,
    atomic_write_json,
    disk_errors,
    point_latest,
    promote_best,
    prune,
    read_latest,
    save_checkpoint,
)

log = logging.getLogger("edgevit_paddle")


class NonFiniteLoss(TrainingError):
    """The training loss became NaN or infinite."""


@dataclass
class RunState:
    """What a run has done so far; saved beside every checkpoint and restored on resume."""

    epochs_done: int = 0
    global_step: int = 0
    best_top1: float = -1.0
    best_epoch: int = 0
    best_from: str = ""  # "model" or "ema": which weights scored best_top1 (and are checkpoints/best)
    train_seconds: float = 0.0
    history: List[Dict[str, Any]] = field(default_factory=list)
    identity: Dict[str, Any] = field(default_factory=dict)  # what the weights are (weights.model_identity)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "RunState":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def _scalar(value: Any) -> Optional[float]:
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class VisualDLWriter:
    """A ``visualdl.LogWriter`` on ``<run>/vdl`` that appends to the run's existing record file on resume."""

    def __init__(self, logdir: str):
        from visualdl import LogWriter
        existing = sorted(glob.glob(os.path.join(logdir, "vdlrecords.*.log")))
        self.writer = LogWriter(logdir=logdir, file_name=os.path.basename(existing[-1]) if existing else "")

    def scalars(self, prefix: str, values: Dict[str, Optional[float]], step: int) -> None:
        for name, value in values.items():
            if value is not None and math.isfinite(value):
                self.writer.add_scalar(tag=f"{prefix}/{name}", step=int(step), value=float(value))

    def close(self) -> None:
        self.writer.close()


class TrainingMonitor(paddle.callbacks.Callback):
    """Bookkeeping of one run: per step NaN check and VisualDL scalars; per epoch log line, checkpoints and metrics.

    Args:
        run_dir: the run's folder (``checkpoints/``, ``vdl/``, ``metrics.json`` go there).
        state: the run's ``RunState`` (restored on resume).
        total_epochs: epochs of the whole run (not only of this ``fit`` call).
        will_eval: ``will_eval(fit_epoch)`` tells whether ``fit`` evaluates after that epoch.
        save_freq: save ``epoch_<n>`` every this many epochs (and always the last one).
        keep_checkpoints: how many ``epoch_<n>`` checkpoints to keep (``best`` is kept apart).
        use_visualdl: write VisualDL logs.
        write: whether this process writes files (rank 0 only).
        processes: data-parallel processes; images/s counts the images of all of them.
        ema: the run's ``ModelEMA`` (``EMA.decay``), saved in every checkpoint; ``evaluate_ema()`` returns its eval
            metrics (``ema_loss``, ``ema_acc_top1``...) after each evaluation, and the best of the raw and the EMA
            weights is kept as ``best``.
    """

    def __init__(self, run_dir: str, state: RunState, total_epochs: int, will_eval, save_freq: int = 1,
                 keep_checkpoints: int = 2, use_visualdl: bool = True, write: bool = True, batch_size: int = 1,
                 processes: int = 1, ema=None, evaluate_ema=None):
        super().__init__()
        self.ema, self.evaluate_ema = ema, evaluate_ema
        self.run_dir = run_dir
        self.ckpt_dir = os.path.join(run_dir, "checkpoints")
        self.state = state
        self.total_epochs = total_epochs
        self.will_eval = will_eval
        self.save_freq = save_freq
        self.keep = keep_checkpoints
        self.write = write
        self.batch_size = batch_size
        self.processes = processes
        self.vdl = VisualDLWriter(os.path.join(run_dir, "vdl")) if (use_visualdl and write) else None
        self.epoch = state.epochs_done
        self.train_logs: Dict[str, Any] = {}
        self._t0 = 0.0
        self._images = 0
        self._loss_sum, self._batches = 0.0, 0
        latest = read_latest(self.ckpt_dir)
        self.last_saved: Optional[str] = latest["checkpoint"] if latest else None

    # -- per step -------------------------------------------------------------------------------------------
    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.epoch = self.state.epochs_done + 1
        self._t0 = time.time()
        self._images = 0
        self._loss_sum, self._batches = 0.0, 0

    def on_train_batch_end(self, step: int, logs=None) -> None:
        logs = logs or {}
        self.state.global_step += 1
        self._images += int(logs.get("batch_size", self.batch_size)) * self.processes
        loss = _scalar(logs.get("loss"))
        if loss is None or not math.isfinite(loss):
            raise NonFiniteLoss(
                f"loss became {loss} at epoch {self.epoch}, step {step + 1} (global step {self.state.global_step}); "
                f"stopped without saving. Last good checkpoint: {self._last_good()} — lower Optimizer.lr, add "
                "Optimizer.grad_clip or warm-up, then resume with --resume")
        self._loss_sum += loss
        self._batches += 1
        if self.vdl is not None:
            values = {"loss": loss, "lr": float(self.model._optimizer.get_lr())}
            values.update({k: _scalar(v) for k, v in logs.items() if k.startswith("acc")})
            self.vdl.scalars("train", values, self.state.global_step)

    # -- per epoch ------------------------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int, logs=None) -> None:
        seconds = time.time() - self._t0
        self.state.train_seconds += seconds
        self.train_logs = {"loss": self._loss_sum / max(self._batches, 1), "seconds": round(seconds, 2),
                           "images_per_sec": round(self._images / max(seconds, 1e-9), 2),
                           "lr": float(self.model._optimizer.get_lr())}
        self.train_logs.update({k: _scalar(v) for k, v in (logs or {}).items() if k.startswith("acc")})
        if not self.will_eval(epoch):
            self._finish_epoch({})

    def on_eval_end(self, logs=None) -> None:
        if not self.train_logs:  # an evaluate() outside fit
            return
        logs = logs or {}
        eval_logs = {k: _scalar(v) for k, v in logs.items() if k == "loss" or k.startswith("acc")}
        if self.ema is not None and self.evaluate_ema is not None:
            eval_logs.update(self.evaluate_ema())
        self._finish_epoch(eval_logs)

    def _last_good(self) -> str:
        return os.path.join(self.ckpt_dir, self.last_saved) if self.last_saved else "none saved yet"

    def _finish_epoch(self, eval_logs: Dict[str, Optional[float]]) -> None:
        epoch = self.epoch
        st = self.state
        st.epochs_done = epoch
        top1, ema_top1 = eval_logs.get("acc_top1"), eval_logs.get("ema_acc_top1")
        candidates = [(v, src) for v, src in ((top1, "model"), (ema_top1, "ema")) if v is not None]
        score, source = max(candidates, key=lambda c: c[0]) if candidates else (None, "")
        improved = score is not None and score > st.best_top1
        if improved:
            st.best_top1, st.best_epoch, st.best_from = score, epoch, source
        record = {"epoch": epoch, "train": self.train_logs, "eval": eval_logs}
        st.history.append(record)
        self.train_logs = {}
        if self.vdl is not None:
            tl = record["train"]
            self.vdl.scalars("train", {"epoch_seconds": tl["seconds"], "images_per_sec": tl["images_per_sec"]}, epoch)
            self.vdl.scalars("eval", eval_logs, epoch)
        ev = (f" | eval loss {eval_logs['loss']:.4f} top1 {100 * top1:.2f}%"
              + (f" top5 {100 * eval_logs['acc_top5']:.2f}%" if eval_logs.get("acc_top5") is not None else "")
              if top1 is not None else "")
        ev += f" | ema top1 {100 * ema_top1:.2f}%" if ema_top1 is not None else ""
        tl = record["train"]
        log.info(f"epoch {epoch}/{self.total_epochs}: train loss {tl['loss']:.4f}{ev} | lr {tl['lr']:.3g} | "
                 f"{tl['seconds']:.1f}s, {tl['images_per_sec']:.1f} img/s"
                 + (f" | best top1 {100 * st.best_top1:.2f}% (epoch {st.best_epoch}"
                    f"{', EMA' if st.best_from == 'ema' else ''})" if st.best_top1 >= 0 else ""))
        if not self.write:
            return
        net, opt = self.model.network, self.model._optimizer
        # order: the epoch's checkpoint and its best (as best_pending), then latest.json (the commit point), then
        # best_pending -> best (renames), then pruning: a stop at any moment leaves latest.json naming a whole
        # checkpoint and best.* as latest.json records it (a resume settles a pending best either way)
        saving = epoch % self.save_freq == 0 or epoch == self.total_epochs
        if saving:
            save_checkpoint(self.ckpt_dir, f"epoch_{epoch}", net, opt, st.to_dict(), update_latest=False,
                            ema=self.ema)
        if improved and st.best_from == "ema":
            with self.ema.applied(net):
                save_checkpoint(self.ckpt_dir, PENDING_BEST, net, None, st.to_dict(), update_latest=False)
        elif improved:
            save_checkpoint(self.ckpt_dir, PENDING_BEST, net, None, st.to_dict(), update_latest=False)
        if saving:
            point_latest(self.ckpt_dir, f"epoch_{epoch}", st.to_dict())
        if improved:
            promote_best(self.ckpt_dir)
        if saving:
            self.last_saved = f"epoch_{epoch}"
            prune(self.ckpt_dir, self.keep)
        with disk_errors(self.run_dir):
            write_metrics(self.run_dir, st)

    def on_train_end(self, logs=None) -> None:
        if self.vdl is not None:
            self.vdl.close()
            self.vdl = None

    def save_interrupted(self) -> Optional[str]:
        """On Ctrl-C: save the current weights as ``interrupted`` and point ``latest`` at it."""
        if not self.write:
            return None
        state = RunState.from_dict(self.state.to_dict())
        prefix = save_checkpoint(self.ckpt_dir, "interrupted", self.model.network, self.model._optimizer,
                                 state.to_dict(), ema=self.ema)
        write_metrics(self.run_dir, state)
        return prefix


def write_metrics(run_dir: str, state: RunState, final: Optional[Dict[str, Optional[float]]] = None) -> Dict:
    """``metrics.json``: final/best top-1, final top-5, epochs done, training seconds and the per-epoch history."""
    evals = [h["eval"] for h in state.history if h["eval"].get("acc_top1") is not None]
    last = final or (evals[-1] if evals else {})
    metrics = {
        "final_top1": last.get("acc_top1"),
        "final_top5": last.get("acc_top5"),
        "final_loss": last.get("loss"),
        "best_top1": state.best_top1 if state.best_top1 >= 0 else None,
        "best_epoch": state.best_epoch or None,
        "best_from": state.best_from or None,
        "epochs_done": state.epochs_done,
        "train_seconds": round(state.train_seconds, 2),
        "global_step": state.global_step,
        "history": state.history,
    }
    atomic_write_json(metrics, os.path.join(run_dir, "metrics.json"))
    return metrics
