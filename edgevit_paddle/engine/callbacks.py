"""The training run's hapi callbacks: VisualDL curves, the per-step NaN stop and the epoch log lines
(``TrainingMonitor``), and the progress bar's epoch numbers (``EpochProgBar``). What they record lives in a
``RunState`` (``run_state.py``).

The trainer's loop owns the absolute epoch and calls ``paddle.Model.fit`` for one epoch at a time; these record what
it reports, so a resumed run's log lines and VisualDL curves continue the original run (VisualDL appends to the run's
existing record file).
"""
from __future__ import annotations

import glob
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import paddle

from ..errors import TrainingError
from .run_state import RunState

log = logging.getLogger("edgevit_paddle")


class NonFiniteLoss(TrainingError):
    """The training loss became NaN or infinite."""


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
    """Watches one epoch of ``fit`` at a time: per step the NaN stop and VisualDL scalars, per epoch the training
    loss, speed and learning rate (``epoch_logs``); ``log_epoch`` writes the epoch's line and curves.

    Args:
        run_dir: the run's folder (``vdl/`` goes there).
        state: the run's ``RunState`` (its global step goes on counting here).
        total_epochs: epochs of the whole run.
        last_good: ``last_good()`` names the newest committed checkpoint (for the NaN message).
        use_visualdl: write VisualDL logs (only where ``write``).
        write: whether this process writes files (rank 0 only).
        batch_size, processes: images per step and data-parallel processes (images/s counts all of them).
        optimizer: the run's optimizer (its learning rate is logged).
    """

    def __init__(self, run_dir: str, state: RunState, total_epochs: int, last_good=lambda: "none saved yet",
                 use_visualdl: bool = True, write: bool = True, batch_size: int = 1, processes: int = 1,
                 optimizer=None):
        super().__init__()
        self.state, self.total_epochs, self.last_good, self.optimizer = state, total_epochs, last_good, optimizer
        self.batch_size, self.processes = batch_size, processes
        self.vdl = VisualDLWriter(os.path.join(run_dir, "vdl")) if (use_visualdl and write) else None
        self.epoch = state.epochs_done
        self._t0 = 0.0
        self._images = 0
        self._loss_sum, self._batches = 0.0, 0
        self._acc: Dict[str, Optional[float]] = {}
        self._step_lr: Optional[float] = None

    def begin_epoch(self, epoch: int) -> None:
        """The loop starts absolute epoch ``epoch`` (1-based)."""
        self.epoch = epoch
        self._t0 = time.time()
        self._images = 0
        self._loss_sum, self._batches = 0.0, 0
        self._acc = {}

    def on_train_batch_begin(self, step: int, logs=None) -> None:
        self._step_lr = self._lr()  # the rate this step trains with (the schedule moves on after it)

    def on_train_batch_end(self, step: int, logs=None) -> None:
        logs = logs or {}
        self.state.global_step += 1
        self._images += int(logs.get("batch_size", self.batch_size)) * self.processes
        loss = _scalar(logs.get("loss"))
        if loss is None or not math.isfinite(loss):
            raise NonFiniteLoss(
                f"loss became {loss} at epoch {self.epoch}, step {step + 1} (global step {self.state.global_step}); "
                f"stopped without saving. Last good checkpoint: {self.last_good()} — lower Optimizer.lr, add "
                "Optimizer.grad_clip or warm-up, then resume with --resume")
        self._loss_sum += loss
        self._batches += 1
        self._acc = {k: _scalar(v) for k, v in logs.items() if k.startswith("acc")}
        if self.vdl is not None:
            values = {"loss": loss, **({"lr": self._lr()} if self.optimizer is not None else {})}
            values.update(self._acc)
            self.vdl.scalars("train", values, self.state.global_step)

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self._acc.update({k: _scalar(v) for k, v in (logs or {}).items() if k.startswith("acc")})

    def _lr(self) -> Optional[float]:
        return float(self.optimizer.get_lr()) if self.optimizer is not None else None

    def epoch_logs(self) -> Dict[str, Any]:
        """The epoch's training loss (mean over steps), time, images/s and learning rate (the one its last step
        trained with, read before that step: after the epoch the schedule has moved on), and its running
        accuracies."""
        seconds = time.time() - self._t0
        self.state.train_seconds += seconds
        logs = {"loss": self._loss_sum / max(self._batches, 1), "seconds": round(seconds, 2),
                "images_per_sec": round(self._images / max(seconds, 1e-9), 2),
                "lr": self._step_lr if self._batches else self._lr()}
        logs.update(self._acc)
        return logs

    def log_epoch(self, record: Dict[str, Any]) -> None:
        """The epoch's log line and its VisualDL curves (``record``: a ``RunState.history`` entry)."""
        st, epoch, tl, eval_logs = self.state, record["epoch"], record["train"], record["eval"]
        top1, ema_top1 = eval_logs.get("acc_top1"), eval_logs.get("ema_acc_top1")
        if self.vdl is not None:
            self.vdl.scalars("train", {"epoch_seconds": tl["seconds"], "images_per_sec": tl["images_per_sec"]}, epoch)
            self.vdl.scalars("eval", eval_logs, epoch)
        ev = (f" | eval loss {eval_logs['loss']:.4f} top1 {100 * top1:.2f}%"
              + (f" top5 {100 * eval_logs['acc_top5']:.2f}%" if eval_logs.get("acc_top5") is not None else "")
              if top1 is not None else "")
        ev += f" | ema top1 {100 * ema_top1:.2f}%" if ema_top1 is not None else ""
        log.info(f"epoch {epoch}/{self.total_epochs}: train loss {tl['loss']:.4f}{ev} | lr {tl['lr']:.3g} | "
                 f"{tl['seconds']:.1f}s, {tl['images_per_sec']:.1f} img/s"
                 + (f" | best top1 {100 * st.best_top1:.2f}% (epoch {st.best_epoch}"
                    f"{', EMA' if st.best_from == 'ema' else ''})" if st.best_top1 >= 0 else ""))

    def close(self) -> None:
        if self.vdl is not None:
            self.vdl.close()
            self.vdl = None


class EpochProgBar(paddle.callbacks.ProgBarLogger):
    """hapi's progress bar, numbering the epochs of the whole run (``fit`` runs one epoch at a time and would
    print ``Epoch 1/1`` each time)."""

    def __init__(self, total_epochs: int, log_freq: int = 1, verbose: int = 2):
        super().__init__(log_freq, verbose=verbose)
        self.total_epochs, self.absolute, self._begun = total_epochs, 1, False

    def on_train_begin(self, logs=None) -> None:
        verbose = self.verbose
        self.verbose = verbose if not self._begun else 0  # its note on the printed loss once per run, not per epoch
        try:
            super().on_train_begin(logs)
        finally:
            self.verbose, self._begun = verbose, True
        self.epochs = self.total_epochs

    def on_epoch_begin(self, epoch=None, logs=None) -> None:
        super().on_epoch_begin(self.absolute - 1, logs)


@dataclass
class RunCallbacks:
    """A run's callbacks: ``fit`` gets ``all`` in this order; the loop also talks to ``progress`` and ``monitor``
    (which are among them) between the epochs."""

    progress: EpochProgBar
    monitor: TrainingMonitor
    all: List[paddle.callbacks.Callback]

    def close(self) -> None:
        self.monitor.close()
