"""Config-driven training and evaluation under ``paddle.Model`` (prepare, then ``fit`` one epoch at a time).

``train`` reads the data first (a bad root or split fails before anything is written), builds the model, opens the
run folder (``run_folder.py``), restores a resume point (``CheckpointSaver``), and hands the epochs to ``EpochLoop``.
What the process sets up around it (signals, device, threads, seeds, logging) is ``process.py``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from ..builder import build_model_from_config
from ..data import LabeledDataset, build_dataset
from ..errors import ConfigError, DataError, TrainingError, WeightsError
from ..paddle_compat import loader_worker_death
from ..weights import check_identity, identity_in, model_identity
from .callbacks import EpochProgBar, RunState, TrainingMonitor, write_metrics
from .checkpoint import disk_errors, load_checkpoint
from .checkpoint_saver import CheckpointSaver
from .ema import EMAUpdate, ModelEMA
from .epoch_loop import EpochLoop, scalars
from .loaders import build_loaders
from .optim import base_lr, build_loss, build_metric, build_optimizer
from .pretrained import load_pretrained
from .process import convert_sync_bn, handle_signals, log, seed_everything, set_device, setup_logging, world
from .run_folder import load_run_config, locked, new_run_dir, resolve_resume, write_run_files

__all__ = ["train", "evaluate", "convert_sync_bn", "load_run_config", "resolve_resume"]


def _input_specs(cfg: Dict[str, Any]):
    c, s = cfg["Data"]["channels"], cfg["Data"]["image_size"]
    return [InputSpec([None, c, s, s], "float32", "x")], [InputSpec([None, 1], "int64", "label")]


def _prepare(net: nn.Layer, cfg: Dict[str, Any], optimizer=None) -> paddle.Model:
    inputs, labels = _input_specs(cfg)
    model = paddle.Model(net, inputs=inputs, labels=labels)
    amp = None
    level = cfg["AMP"]["level"]
    if level != "O0":
        if cfg["Global"]["device"] == "gpu" and paddle.is_compiled_with_cuda():
            amp = {"level": level}
        else:
            warnings.warn(f"AMP.level={level} needs a GPU; training in float32 on CPU")
    model.prepare(optimizer, build_loss(cfg["Loss"]), build_metric(cfg["Metric"], net.num_classes), amp_configs=amp)
    return model


@dataclass
class _Data:
    train: LabeledDataset
    eval: LabeledDataset

    @property
    def num_classes(self) -> int:
        return self.train.info.num_classes


def _open_data(cfg: Dict[str, Any]) -> _Data:
    data = _Data(build_dataset(cfg["Data"], "Train"), build_dataset(cfg["Data"], "Eval"))
    if data.train.info.num_classes != data.eval.info.num_classes:
        raise ConfigError(f"train and eval data have {data.train.info.num_classes} and "
                          f"{data.eval.info.num_classes} classes; they must be equal")
    return data


def _log_start(cfg: Dict[str, Any], net: nn.Layer, data: _Data, world_size: int, threads: Optional[int],
               pretrained: Optional[str]) -> None:
    g = cfg["Global"]
    trainable = sum(p.numel() for p in net.parameters() if not p.stop_gradient)
    variant = net.default_cfg.variant_label()
    log.info(f"model {cfg['Model']['name']}{f' ({variant})' if variant else ''}; {trainable:,} trainable "
             f"parameters; {world_size} process(es) on {g['device']}"
             + (f", {threads} thread(s) each" if threads else ""))
    log.info(f"train data: {data.train.info.describe()}")
    log.info(f"eval data:  {data.eval.info.describe()}")
    if pretrained:
        log.info(pretrained)
    if cfg["Model"]["freeze_stages"]:
        log.info(f"frozen: the first {cfg['Model']['freeze_stages']} stage(s) (no gradient, eval mode)")


def train(cfg: Dict[str, Any], resume: Optional[str] = None, weights_only: bool = False) -> Dict[str, Any]:
    """Train as ``cfg`` says; with ``resume`` (a run folder) continue that run (``weights_only``: restart the
    optimizer and schedule from the config when the checkpoint has no optimizer state). Returns the metrics."""
    g = cfg["Global"]
    handle_signals()
    rank, world_size = world()
    threads = set_device(g["device"], g["cpu_threads"], world_size)
    write = rank == 0
    seed_everything(g["seed"] + rank)

    data = _open_data(cfg)
    batch = cfg["Data"]["Train"]["batch_size"]
    if len(data.train) < batch * world_size:  # before the run folder is made: nothing is left behind
        raise _batch_too_large(batch, len(data.train), world_size)
    net = build_model_from_config(cfg, data.num_classes)
    run_dir = resume or new_run_dir(cfg)
    saver = CheckpointSaver(os.path.join(run_dir, "checkpoints"), g["save_freq"], g["keep_checkpoints"], g["epochs"],
                            write)
    latest = saver.resume_point() if resume else None
    pretrained = None
    if g["pretrained_model"] and latest is None:  # a resume continues from its own checkpoint
        pretrained = load_pretrained(net, g["pretrained_model"], g["pretrained_strict"], g["pretrained_any_variant"])
    ema = ModelEMA(net, cfg["EMA"]["decay"]) if cfg["EMA"]["decay"] else None
    state = RunState(identity=model_identity(net))
    if latest is not None:
        state = RunState.from_dict(latest)
        check_identity(net, identity_in(latest), os.path.join(run_dir, "checkpoints", latest["checkpoint"]))
        state.identity = model_identity(net)
    with contextlib.ExitStack() as held:
        if write:  # the writing process holds the run folder for as long as it runs
            with disk_errors(run_dir):
                held.enter_context(locked(run_dir))
        return _train_in(run_dir, cfg, net, data, state, saver, resume, latest, ema, weights_only, rank,
                         world_size, threads, pretrained)


def _train_in(run_dir: str, cfg: Dict[str, Any], net: nn.Layer, data: _Data, state: RunState,
              saver: CheckpointSaver, resume: Optional[str], latest: Optional[Dict[str, Any]],
              ema: Optional[ModelEMA], weights_only: bool, rank: int, world_size: int, threads: Optional[int],
              pretrained: Optional[str]) -> Dict[str, Any]:
    """The run, inside its locked folder: restore the resume point, prepare, train the remaining epochs."""
    g = cfg["Global"]
    write = rank == 0
    recovered = saver.recover(latest or {}) if (resume and write) else []
    if resume and latest is None:  # stopped in its first epoch: nothing to continue, the run starts again in place
        recovered.append(f"no checkpoint was saved in '{run_dir}' yet (the run stopped in its first epoch): training "
                         "it again from epoch 1 in this folder")
    setup_logging(run_dir if write else None)
    print(f"run directory: {run_dir}", flush=True)
    _log_start(cfg, net, data, world_size, threads, pretrained)
    net = convert_sync_bn(net, world_size, g["sync_bn"], g["device"])

    total_epochs, batch = g["epochs"], cfg["Data"]["Train"]["batch_size"]
    remaining = total_epochs - state.epochs_done
    train_batches, eval_loader = build_loaders(cfg, data.train, data.eval, data.num_classes, rank, world_size)
    steps_per_epoch = len(train_batches)
    if steps_per_epoch < 1:
        raise _batch_too_large(batch, len(data.train), world_size)
    optimizer, by_epoch = build_optimizer(cfg["Optimizer"], net, steps_per_epoch, total_epochs, batch * world_size)
    if cfg["Optimizer"]["lr_reference_batch"]:
        log.info(f"learning rate {base_lr(cfg['Optimizer'], batch * world_size):.3g} = Optimizer.lr "
                 f"{cfg['Optimizer']['lr']:g} x global batch {batch * world_size} / "
                 f"{cfg['Optimizer']['lr_reference_batch']}")
    model = _prepare(net, cfg, optimizer)
    if latest:
        prefix = os.path.join(run_dir, "checkpoints", latest["checkpoint"])
        load_checkpoint(prefix, net, optimizer, weights_only, ema)  # weights, optimizer, LR schedule, EMA
        log.info(f"resumed from {prefix}: {state.epochs_done} epoch(s) done, {remaining} to go"
                 + (" (optimizer and schedule restarted: --weights-only)" if weights_only else ""))
        if not weights_only and state.epochs_done and state.global_step != state.epochs_done * steps_per_epoch:
            warnings.warn(f"this run took {state.global_step / state.epochs_done:g} steps per epoch before and takes "
                          f"{steps_per_epoch} now (batch size, data or processes changed): its per-step schedule "
                          "will not end where it was planned; resume with --weights-only to restart the schedule "
                          "for the new steps, or keep the run's Data settings")
        floor = cfg["Optimizer"]["Scheduler"]["min_lr"]
        if remaining > 0 and not weights_only and float(optimizer.get_lr()) <= floor + 1e-12:
            warnings.warn(f"the run's learning-rate schedule has ended (rate {float(optimizer.get_lr()):.3g}): the "
                          f"{remaining} added epoch(s) would train at it. To schedule them anew, resume with "
                          "--weights-only (the optimizer and schedule restart from the config), or fine-tune a new "
                          f"run from this one: -o Global.pretrained_model={run_dir}")
    if write:  # only now: a resume that fails above leaves the run's config.yaml as it was
        for line in recovered:
            log.info(line)
        write_run_files(run_dir, cfg, data.train.info.class_names or [str(i) for i in range(data.num_classes)])
    if remaining <= 0:
        log.info(f"nothing to do: {state.epochs_done} of {total_epochs} epochs already done "
                 "(raise Global.epochs to train longer)")
        return write_metrics(run_dir, state) if write else {}

    monitor = TrainingMonitor(run_dir, state, total_epochs, saver.last_good, g["use_visualdl"], write, batch,
                              world_size, optimizer)
    progress = EpochProgBar(total_epochs, g["log_freq"], g["verbose"])
    # the EMA follows each step before anything reads it
    callbacks = [progress] + ([EMAUpdate(ema)] if ema else []) + \
        [monitor, paddle.callbacks.LRScheduler(by_step=not by_epoch, by_epoch=by_epoch)]
    loop = EpochLoop(model, optimizer, train_batches, eval_loader, state, saver, monitor, progress, callbacks,
                     seed=g["seed"] + rank, eval_freq=g["eval_freq"], ema=ema, verbose=g["verbose"])
    loader_errors, previous_hook = [], threading.excepthook
    threading.excepthook = _catch_data_errors(loader_errors, previous_hook, [train_batches.loader, eval_loader])
    worker_deaths = _WorkerDeaths()
    logging.getLogger().addFilter(worker_deaths)
    try:
        loop.run(state.epochs_done + 1, total_epochs, run_dir if write else None)
    except KeyboardInterrupt:
        loop.rewind_to_epoch_start()
        prefix = saver.save_interrupted(net, optimizer, state.to_dict(), ema)
        if write:
            write_metrics(run_dir, state)
        log.info(f"interrupted: saved {prefix}; continue with: python tools/train.py --resume {run_dir}")
        raise
    except Exception as e:
        # a data-loading thread failed and Paddle reports only "Blocking queue is killed": say what failed
        cause = loader_errors.pop() if loader_errors and isinstance(e, SystemError) else e
        if isinstance(cause, DataError):
            raise cause from None
        death = loader_worker_death(cause) or (worker_deaths.seen[-1] if worker_deaths.seen and
                                               isinstance(e, SystemError) else None)
        if death is not None:  # e.g. the kernel's out-of-memory killer
            raise TrainingError(f"a data-loading worker process ({death}) stopped the run (out of memory? lower "
                                "Data.num_workers or the batch size); continue from the last checkpoint "
                                f"({saver.last_good()}): python tools/train.py --resume {run_dir}") from None
        raise
    finally:
        monitor.close()
        threading.excepthook = previous_hook
        logging.getLogger().removeFilter(worker_deaths)
        for loader in (train_batches, eval_loader):
            loader.shutdown()
    metrics = write_metrics(run_dir, state) if write else {}
    if write:
        log.info(f"done: final top1 {100 * metrics['final_top1']:.2f}%, best top1 "
                 f"{100 * metrics['best_top1']:.2f}% (epoch {metrics['best_epoch']}"
                 f"{', EMA weights' if metrics['best_from'] == 'ema' else ''}), "
                 f"{metrics['train_seconds']:.0f}s training; results in {run_dir}")
    return metrics


def _batch_too_large(batch: int, images: int, world_size: int) -> ConfigError:
    over = f" over {world_size} processes" if world_size > 1 else ""
    return ConfigError(f"Data.Train.batch_size {batch} is larger than the training set ({images} images{over}): "
                       "lower it")


class _WorkerDeaths(logging.Filter):
    """Keeps (and keeps off the screen) the warning Paddle's reading thread logs when a worker process has died; the
    training step then fails with "Blocking queue is killed", and the run ends with one line naming the worker."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def filter(self, record: logging.LogRecord) -> bool:
        death = loader_worker_death(record.getMessage())
        if death is None:
            return True
        self.seen.append(death)
        return False


def _catch_data_errors(store: list, previous, loaders):
    """A ``threading.excepthook`` for a thread that fails: a data error is kept as one ``DataError`` (the worker's
    traceback reduced to its last line) instead of printing the traceback, anything else keeps its traceback; and
    when it is the reading thread of one of ``loaders``, that loader is stopped with an error (Paddle leaves the
    training step waiting forever on the dead thread's queue, deaf to Ctrl-C)."""
    def hook(args):
        if isinstance(args.exc_value, DataError):
            last = str(args.exc_value).strip().splitlines()[-1]
            store.append(DataError(last.split("DataError: ", 1)[-1]))
        else:
            previous(args)
        for loader in loaders:
            if loader.reads_in(args.thread):
                loader.abort()
    return hook


def evaluate(cfg: Dict[str, Any], weights: str) -> Dict[str, float]:
    """Top-k accuracy and loss of ``weights`` on the eval split of ``cfg``."""
    set_device(cfg["Global"]["device"], cfg["Global"]["cpu_threads"])
    eval_ds = build_dataset(cfg["Data"], "Eval")
    net = build_model_from_config(cfg, eval_ds.info.num_classes, weights=weights)
    model = _prepare(net, cfg)
    t0 = time.time()
    res = model.evaluate(eval_ds, batch_size=cfg["Data"]["Eval"]["batch_size"], verbose=0,
                         num_workers=cfg["Data"]["num_workers"])
    out = scalars(res)
    if not np.isfinite(out.get("loss", 0.0)):
        raise WeightsError(f"the model produced non-finite outputs on the eval data (loss {out['loss']}): the weights "
                           f"'{weights}' are damaged (NaN or inf); evaluate an earlier checkpoint")
    out["seconds"] = round(time.time() - t0, 2)
    out["images"] = len(eval_ds)
    out["data"] = eval_ds.info.describe()
    return out
