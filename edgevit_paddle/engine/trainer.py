"""Config-driven training and evaluation under ``paddle.Model`` (prepare, then ``fit`` one epoch at a time).

``train`` reads the data first (a bad root or split fails before anything is written), builds the model, opens the
run folder (``run_folder.py``), gathers it all in a ``Run`` (``run.py``), restores a resume point
(``CheckpointSaver``), and hands the epochs to ``EpochLoop`` with the loaders' failures explained (``loaders.py``).
What the process sets up around it (signals, device, threads, seeds, logging) is ``process.py``.
"""
from __future__ import annotations

import contextlib
import os
import time
import warnings
from typing import Any, Dict, List, Optional

import numpy as np
import paddle

from ..builder import build_model_from_config
from ..data import build_dataset
from ..errors import ConfigError, WeightsError
from ..weights import check_identity, identity_in, model_identity
from .callbacks import EpochProgBar, RunCallbacks, TrainingMonitor
from .checkpoint import disk_errors, load_checkpoint
from .checkpoint_saver import CheckpointSaver
from .ema import EMAUpdate, ModelEMA
from .epoch_loop import EpochLoop, scalars
from .loaders import build_loaders, failures_explained
from .model_api import prepare_model
from .optim import base_lr, build_optimizer
from .pretrained import load_pretrained
from .process import convert_sync_bn, handle_signals, log, seed_everything, set_device, setup_logging, world
from .run import Run, RunData
from .run_folder import load_run_config, locked, new_run_dir, resolve_resume, write_run_files
from .run_state import RunState, write_metrics

__all__ = ["train", "evaluate", "convert_sync_bn", "load_run_config", "resolve_resume"]


def _open_data(cfg: Dict[str, Any]) -> RunData:
    data = RunData(build_dataset(cfg["Data"], "Train"), build_dataset(cfg["Data"], "Eval"))
    if data.train.info.num_classes != data.eval.info.num_classes:
        raise ConfigError(f"train and eval data have {data.train.info.num_classes} and "
                          f"{data.eval.info.num_classes} classes; they must be equal")
    return data


def train(cfg: Dict[str, Any], resume: Optional[str] = None, weights_only: bool = False) -> Dict[str, Any]:
    """Train as ``cfg`` says; with ``resume`` (a run folder) continue that run (``weights_only``: restart the
    optimizer and schedule from the config when the checkpoint has no optimizer state). Returns the metrics."""
    g = cfg["Global"]
    handle_signals()
    rank, world_size = world()
    threads = set_device(g["device"], g["cpu_threads"], world_size)
    seed_everything(g["seed"] + rank)

    data = _open_data(cfg)
    batch = cfg["Data"]["Train"]["batch_size"]
    if len(data.train) < batch * world_size:  # before the run folder is made: nothing is left behind
        raise _batch_too_large(batch, len(data.train), world_size)
    net = build_model_from_config(cfg, data.num_classes)
    folder = resume or new_run_dir(cfg)
    saver = CheckpointSaver(os.path.join(folder, "checkpoints"), g["save_freq"], g["keep_checkpoints"], g["epochs"],
                            rank == 0)
    run = Run(cfg, net, data, folder, RunState(identity=model_identity(net)), saver, rank, world_size, threads,
              resumed=bool(resume), latest=saver.resume_point() if resume else None, weights_only=weights_only)
    if g["pretrained_model"] and run.latest is None:  # a resume continues from its own checkpoint
        run.pretrained = load_pretrained(net, g["pretrained_model"], g["pretrained_strict"],
                                         g["pretrained_any_variant"])
    run.ema = ModelEMA(net, cfg["EMA"]["decay"]) if cfg["EMA"]["decay"] else None
    if run.latest is not None:
        run.state = RunState.from_dict(run.latest)
        check_identity(net, identity_in(run.latest), os.path.join(saver.dir, run.latest["checkpoint"]))
        run.state.identity = model_identity(net)
    with contextlib.ExitStack() as held:
        if run.writes:  # the writing process holds the run folder for as long as it runs
            with disk_errors(folder):
                held.enter_context(locked(folder))
        return _train_in(run)


def _train_in(run: Run) -> Dict[str, Any]:
    """The run, inside its locked folder: restore the resume point, prepare, train the remaining epochs."""
    g = run.cfg["Global"]
    recovered = _recovered(run)
    setup_logging(run.folder if run.writes else None)
    print(f"run directory: {run.folder}", flush=True)
    _log_start(run)
    run.net = convert_sync_bn(run.net, run.world_size, g["sync_bn"], g["device"])

    loaders = build_loaders(run.cfg, run.data.train, run.data.eval, run.data.num_classes, run.rank, run.world_size)
    steps_per_epoch = len(loaders.train)
    if steps_per_epoch < 1:
        raise _batch_too_large(run.batch_size, len(run.data.train), run.world_size)
    optimizer, by_epoch = build_optimizer(run.cfg["Optimizer"], run.net, steps_per_epoch, run.epochs,
                                          run.global_batch)
    if run.cfg["Optimizer"]["lr_reference_batch"]:
        log.info(f"learning rate {base_lr(run.cfg['Optimizer'], run.global_batch):.3g} = Optimizer.lr "
                 f"{run.cfg['Optimizer']['lr']:g} x global batch {run.global_batch} / "
                 f"{run.cfg['Optimizer']['lr_reference_batch']}")
    model = prepare_model(run.net, run.cfg, optimizer)
    if run.latest:
        _restore(run, optimizer, steps_per_epoch)
    if run.writes:  # only now: a resume that fails above leaves the run's config.yaml as it was
        for line in recovered:
            log.info(line)
        names = run.data.train.info.class_names or [str(i) for i in range(run.data.num_classes)]
        write_run_files(run.folder, run.cfg, names)
    state = run.state
    if state.epochs_done >= run.epochs:
        log.info(f"nothing to do: {state.epochs_done} of {run.epochs} epochs already done "
                 "(raise Global.epochs to train longer)")
        return write_metrics(run.folder, state) if run.writes else {}

    callbacks = _callbacks(run, optimizer, by_epoch)
    loop = EpochLoop(run, model, optimizer, loaders, callbacks)
    try:
        with failures_explained(loaders, lambda: _resume_hint(run)):
            try:
                loop.run(state.epochs_done + 1, run.epochs)
            except KeyboardInterrupt:
                loop.rewind_to_epoch_start()
                prefix = run.saver.save_interrupted(run.net, optimizer, state.to_dict(), run.ema)
                if run.writes:
                    write_metrics(run.folder, state)
                log.info(f"interrupted: saved {prefix}; continue with: python tools/train.py --resume {run.folder}")
                raise
    finally:
        callbacks.close()
    metrics = write_metrics(run.folder, state) if run.writes else {}
    if run.writes:
        log.info(f"done: final top1 {100 * metrics['final_top1']:.2f}%, best top1 "
                 f"{100 * metrics['best_top1']:.2f}% (epoch {metrics['best_epoch']}"
                 f"{', EMA weights' if metrics['best_from'] == 'ema' else ''}), "
                 f"{metrics['train_seconds']:.0f}s training; results in {run.folder}")
    return metrics


def _recovered(run: Run) -> List[str]:
    """What resuming repaired or found (logged once the run's log is open)."""
    recovered = run.saver.recover(run.latest or {}) if (run.resumed and run.writes) else []
    if run.resumed and run.latest is None:  # stopped in its first epoch: nothing to continue, start again in place
        recovered.append(f"no checkpoint was saved in '{run.folder}' yet (the run stopped in its first epoch): "
                         "training it again from epoch 1 in this folder")
    return recovered


def _log_start(run: Run) -> None:
    cfg, net, data = run.cfg, run.net, run.data
    trainable = sum(p.numel() for p in net.parameters() if not p.stop_gradient)
    variant = net.default_cfg.variant_label()
    log.info(f"model {cfg['Model']['name']}{f' ({variant})' if variant else ''}; {trainable:,} trainable "
             f"parameters; {run.world_size} process(es) on {cfg['Global']['device']}"
             + (f", {run.threads} thread(s) each" if run.threads else ""))
    log.info(f"train data: {data.train.info.describe()}")
    log.info(f"eval data:  {data.eval.info.describe()}")
    if run.pretrained:
        log.info(run.pretrained)
    if cfg["Model"]["freeze_stages"]:
        log.info(f"frozen: the first {cfg['Model']['freeze_stages']} stage(s) (no gradient, eval mode)")


def _restore(run: Run, optimizer, steps_per_epoch: int) -> None:
    """Load the resume point into the run's model, optimizer, LR schedule and EMA, with a warning where the
    continued run cannot end where it was planned."""
    state, remaining = run.state, run.epochs - run.state.epochs_done
    prefix = os.path.join(run.saver.dir, run.latest["checkpoint"])
    load_checkpoint(prefix, run.net, optimizer, run.weights_only, run.ema)
    log.info(f"resumed from {prefix}: {state.epochs_done} epoch(s) done, {remaining} to go"
             + (" (optimizer and schedule restarted: --weights-only)" if run.weights_only else ""))
    if run.weights_only:
        return
    if state.epochs_done and state.global_step != state.epochs_done * steps_per_epoch:
        warnings.warn(f"this run took {state.global_step / state.epochs_done:g} steps per epoch before and takes "
                      f"{steps_per_epoch} now (batch size, data or processes changed): its per-step schedule "
                      "will not end where it was planned; resume with --weights-only to restart the schedule "
                      "for the new steps, or keep the run's Data settings")
    floor = run.cfg["Optimizer"]["Scheduler"]["min_lr"]
    if remaining > 0 and float(optimizer.get_lr()) <= floor + 1e-12:
        warnings.warn(f"the run's learning-rate schedule has ended (rate {float(optimizer.get_lr()):.3g}): the "
                      f"{remaining} added epoch(s) would train at it. To schedule them anew, resume with "
                      "--weights-only (the optimizer and schedule restart from the config), or fine-tune a new "
                      f"run from this one: -o Global.pretrained_model={run.folder}")


def _callbacks(run: Run, optimizer, by_epoch: bool) -> RunCallbacks:
    g = run.cfg["Global"]
    monitor = TrainingMonitor(run.folder, run.state, run.epochs, run.saver.last_good, g["use_visualdl"],
                              run.writes, run.batch_size, run.world_size, optimizer)
    progress = EpochProgBar(run.epochs, g["log_freq"], g["verbose"])
    # the EMA follows each step before anything reads it
    fit = [progress] + ([EMAUpdate(run.ema)] if run.ema else []) + \
        [monitor, paddle.callbacks.LRScheduler(by_step=not by_epoch, by_epoch=by_epoch)]
    return RunCallbacks(progress, monitor, fit)


def _resume_hint(run: Run) -> str:
    return f"continue from the last checkpoint ({run.saver.last_good()}): python tools/train.py --resume {run.folder}"


def _batch_too_large(batch: int, images: int, world_size: int) -> ConfigError:
    over = f" over {world_size} processes" if world_size > 1 else ""
    return ConfigError(f"Data.Train.batch_size {batch} is larger than the training set ({images} images{over}): "
                       "lower it")


def evaluate(cfg: Dict[str, Any], weights: str) -> Dict[str, float]:
    """Top-k accuracy and loss of ``weights`` on the eval split of ``cfg``."""
    set_device(cfg["Global"]["device"], cfg["Global"]["cpu_threads"])
    eval_ds = build_dataset(cfg["Data"], "Eval")
    net = build_model_from_config(cfg, eval_ds.info.num_classes, weights=weights)
    model = prepare_model(net, cfg)
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
