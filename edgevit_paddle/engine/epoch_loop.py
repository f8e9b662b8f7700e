"""The training loop: the one owner of the absolute epoch."""
from __future__ import annotations

import copy
import warnings
from typing import Any, Dict, Optional

import numpy as np
import paddle

from ..data.seeding import epoch_seed
from ..paddle_compat import lr_schedule
from .callbacks import RunCallbacks
from .checkpoint import disk_errors
from .loaders import RunLoaders
from .run import Run
from .run_state import write_metrics


class EpochLoop:
    """The one owner of the absolute epoch (1-based, as the checkpoints and log lines number it): ``run`` goes
    ``for epoch in range(first, last + 1)`` (timm's and PaddleClas's loop) and hands ``epoch`` to the data (sampler,
    per-sample seeds, Mixup/CutMix), to Paddle's generator, to ``paddle.Model.fit`` for that one epoch, to the
    evaluation (after epochs that are multiples of ``eval_freq``, and the last) and to the checkpoint saver.

    A run resumed after epoch ``k`` therefore repeats exactly what the uninterrupted run did from ``k + 1`` on."""

    def __init__(self, run: Run, model: paddle.Model, optimizer, loaders: RunLoaders, callbacks: RunCallbacks):
        self.spec, self.model, self.optimizer, self.loaders, self.callbacks = run, model, optimizer, loaders, callbacks
        self.state, self.saver, self.ema = run.state, run.saver, run.ema
        self.eval_freq, self.verbose = run.cfg["Global"]["eval_freq"], run.cfg["Global"]["verbose"]

    def mark_epoch_start(self, epoch: int) -> None:
        """Remember the step count and the LR schedule as ``epoch`` starts (``rewind_to_epoch_start``)."""
        schedule = lr_schedule(self.optimizer)
        self._epoch_start = (epoch, self.state.global_step,
                             copy.deepcopy(schedule.state_dict()) if schedule else None)

    def rewind_to_epoch_start(self) -> None:
        """The step count and LR schedule of the interrupted epoch's start: a run stopped mid-epoch (Ctrl-C, SIGTERM)
        saves the weights of that moment, and its resume repeats the epoch from the start; without this, the partial
        epoch's steps were counted twice and the schedule ran ahead (global step 14 instead of 12)."""
        start = getattr(self, "_epoch_start", None)
        if start is None or self.state.epochs_done >= start[0]:  # not started, or stopped after it was recorded
            return
        self.state.global_step = start[1]
        schedule = lr_schedule(self.optimizer)
        if schedule is not None and start[2] is not None:
            with warnings.catch_warnings():  # LinearWarmup keeps its inner schedule's keys beside its own: none unused
                warnings.filterwarnings("ignore", message="There are some unused values in state_dict")
                schedule.set_state_dict(start[2])

    def evaluates(self, epoch: int, last: int) -> bool:
        return epoch % self.eval_freq == 0 or epoch == last

    def run(self, first: int, last: int) -> None:
        """Train epochs ``first`` .. ``last``; the run's ``metrics.json`` is written after each (by the writing
        process)."""
        net, run_dir, hooks = self.model.network, self.spec.metrics_dir, self.callbacks
        for epoch in range(first, last + 1):
            self.mark_epoch_start(epoch)
            self.loaders.train.set_epoch(epoch)
            paddle.seed(epoch_seed(self.spec.seed, epoch - 1))  # dropout, drop path
            hooks.monitor.begin_epoch(epoch)
            hooks.progress.absolute = epoch
            self.model.fit(self.loaders.train, epochs=1, verbose=self.verbose, log_freq=hooks.progress.log_freq,
                           callbacks=hooks.all)
            train_logs = hooks.monitor.epoch_logs()
            eval_logs = self.evaluate() if self.evaluates(epoch, last) else {}
            improved = self.state.record_epoch(epoch, train_logs, eval_logs)
            hooks.monitor.log_epoch(self.state.history[-1])
            self.saver.save_epoch(epoch, net, self.optimizer, self.state.to_dict(), improved, self.ema,
                                  best_is_ema=self.state.best_from == "ema")
            if run_dir is not None:
                with disk_errors(run_dir):
                    write_metrics(run_dir, self.state)

    def evaluate(self) -> Dict[str, Optional[float]]:
        """Loss and top-k of the weights, and of the EMA weights (``ema_*``) when the run keeps an EMA."""
        logs = scalars(self.model.evaluate(self.loaders.eval, verbose=0))
        if self.ema is not None:
            with self.ema.applied(self.model.network):
                logs.update({f"ema_{k}": v for k, v in scalars(self.model.evaluate(self.loaders.eval,
                                                                                    verbose=0)).items()})
        return logs


def scalars(res: Dict[str, Any]) -> Dict[str, float]:
    """``paddle.Model.evaluate``'s results as floats (it gives lists and arrays)."""
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in res.items() if k == "loss" or k.startswith("acc")}
