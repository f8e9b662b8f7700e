"""Config-driven training and evaluation under ``paddle.Model`` (prepare/fit/evaluate)."""
from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
import time
import warnings
from typing import Any, Dict, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn
from paddle.static import InputSpec

from .. import kernels
from ..builder import build_model_from_config
from ..config import dump_config, load_config
from ..data import build_dataset
from ..data.datasets import epoch_seed
from ..errors import ConfigError, DataError, MissingFileError, TrainingError, WeightsError
from ..weights import check_identity, identity_in, model_identity
from .callbacks import EpochProgBar, RunState, TrainingMonitor, write_metrics
from .checkpoint import disk_errors, load_checkpoint
from .checkpoint_saver import CheckpointSaver, read_latest
from .ema import EMAUpdate, ModelEMA
from .loaders import build_loaders
from .optim import base_lr, build_loss, build_metric, build_optimizer
from .pretrained import load_pretrained

log = logging.getLogger("edgevit_paddle")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def world() -> tuple:
    """(rank, number of processes) under ``paddle.distributed.launch``; (0, 1) otherwise."""
    env = paddle.distributed.ParallelEnv()
    return env.rank, env.world_size


def setup_logging(run_dir: Optional[str]) -> None:
    """Log lines go to stdout and, for the writing process, to ``<run>/train.log``."""
    log.setLevel(logging.INFO)
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(fmt)
    log.addHandler(out)
    if run_dir:
        fh = logging.FileHandler(os.path.join(run_dir, "train.log"), encoding="utf-8")
        fh.setFormatter(fmt)
        log.addHandler(fh)
    log.propagate = False


def convert_sync_bn(net: nn.Layer, world_size: int, enabled: bool = True, device: str = "gpu") -> nn.Layer:
    """BatchNorm -> SyncBatchNorm when more than one GPU process trains (statistics over the whole batch).

    Paddle has no CPU kernel for SyncBatchNorm: several CPU processes keep per-process statistics (each process's
    own batch), as when ``Global.sync_bn`` is off."""
    has_bn = any(isinstance(m, nn.layer.norm._BatchNormBase) for m in net.sublayers())
    if enabled and world_size > 1 and has_bn:
        if device != "gpu":
            log.info("BatchNorm statistics are per process: Paddle has no SyncBatchNorm on CPU")
            return net
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return net


def _new_run_dir(output_dir: str, run_name: str) -> str:
    """``output_dir/run_name``, or ``run_name-2``, ``-3``... when that already holds a run (nothing is overwritten)."""
    path = os.path.join(output_dir, run_name)
    n = 1
    while os.path.exists(path) and os.listdir(path):
        n += 1
        path = os.path.join(output_dir, f"{run_name}-{n}")
    return path


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


def set_device(device: str, cpu_threads: Optional[int] = None, world_size: int = 1) -> Optional[int]:
    """Select the device; on CPU set the math threads of this process (``cpu_threads``, or with several processes
    the cores shared out among them so they do not oversubscribe the CPU). Returns the thread count set, if any."""
    if device == "gpu" and not paddle.is_compiled_with_cuda():
        raise ConfigError("Global.device is gpu but this Paddle build has no CUDA: install paddlepaddle-gpu "
                          "(see README) or use -o Global.device=cpu")
    paddle.set_device(device)
    if device != "cpu":
        return None
    threads = cpu_threads or (max(1, kernels.default_threads() // world_size) if world_size > 1 else None)
    if threads:
        paddle.base.core.set_num_threads(threads)
    kernels.set_threads(threads)  # our compiled kernels share the same cores, no more
    return threads


class RunLock:
    """An exclusive lock on a run folder (``<run>/.lock``, holding the owner's PID) for as long as a run writes it:
    a second training or resume of the same run is refused instead of mixing its checkpoints with the first's."""

    def __init__(self, run_dir: str):
        import fcntl
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, ".lock")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(self.fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise TrainingError(f"run folder '{run_dir}' is in use by process {holder} (a training or resume of this "
                                "run): wait for it to end or stop it; two processes must not write one run") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())

    def release(self) -> None:
        import fcntl
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``docker stop`` send): handled like Ctrl-C, the run saves ``interrupted``."""


def _terminate(signum, frame):
    raise Terminated()


def train(cfg: Dict[str, Any], resume: Optional[str] = None, weights_only: bool = False) -> Dict[str, Any]:
    """Train as ``cfg`` says; with ``resume`` (a run folder) continue that run (``weights_only``: restart the
    optimizer and schedule from the config when the checkpoint has no optimizer state). Returns the metrics."""
    g = cfg["Global"]
    if threading.current_thread() is threading.main_thread():
        # Importing Paddle leaves SIGINT caught at the C level, and a run started in the background of a script
        # inherits it ignored: give it back to Python, which raises KeyboardInterrupt (and we save a checkpoint).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _terminate)
    rank, world_size = world()
    threads = set_device(g["device"], g["cpu_threads"], world_size)
    write = rank == 0
    seed_everything(g["seed"] + rank)

    # datasets first: a bad root or split fails before anything is written
    train_ds = build_dataset(cfg["Data"], "Train")
    eval_ds = build_dataset(cfg["Data"], "Eval")
    if train_ds.info.num_classes != eval_ds.info.num_classes:
        raise ConfigError(f"train and eval data have {train_ds.info.num_classes} and {eval_ds.info.num_classes} "
                          "classes; they must be equal")
    net = build_model_from_config(cfg, train_ds.info.num_classes)
    batch = cfg["Data"]["Train"]["batch_size"]
    pretrained = None
    if g["pretrained_model"] and not resume:  # a resume continues from its own checkpoint
        pretrained = load_pretrained(net, g["pretrained_model"], g["pretrained_strict"], g["pretrained_any_variant"])
    ema = ModelEMA(net, cfg["EMA"]["decay"]) if cfg["EMA"]["decay"] else None

    state = RunState(identity=model_identity(net))
    run_dir = resume or _new_run_dir(g["output_dir"], g["run_name"] or _default_run_name(cfg))
    total_epochs = g["epochs"]
    saver = CheckpointSaver(os.path.join(run_dir, "checkpoints"), g["save_freq"], g["keep_checkpoints"], total_epochs,
                            write)
    if resume:
        latest = saver.resume_point()
        if latest is None:
            raise MissingFileError(f"nothing to resume in '{run_dir}': no checkpoints/latest.json there")
        state = RunState.from_dict(latest)
        check_identity(net, identity_in(latest), os.path.join(run_dir, "checkpoints", latest["checkpoint"]))
        state.identity = model_identity(net)
    with disk_errors(run_dir):
        lock = RunLock(run_dir) if write else None
    try:
        recovered = saver.recover(latest) if (resume and write) else []
        setup_logging(run_dir if write else None)
        print(f"run directory: {run_dir}", flush=True)
        trainable = sum(p.numel() for p in net.parameters() if not p.stop_gradient)
        variant = net.default_cfg.variant_label()
        log.info(f"model {cfg['Model']['name']}{f' ({variant})' if variant else ''}; {trainable:,} trainable "
                 f"parameters; {world_size} process(es) on {g['device']}"
                 + (f", {threads} thread(s) each" if threads else ""))
        log.info(f"train data: {train_ds.info.describe()}")
        log.info(f"eval data:  {eval_ds.info.describe()}")
        if pretrained:
            log.info(pretrained)
        if cfg["Model"]["freeze_stages"]:
            log.info(f"frozen: the first {cfg['Model']['freeze_stages']} stage(s) (no gradient, eval mode)")
        net = convert_sync_bn(net, world_size, g["sync_bn"], g["device"])

        remaining = total_epochs - state.epochs_done
        train_batches, eval_loader = build_loaders(cfg, train_ds, eval_ds, train_ds.info.num_classes, rank,
                                                   world_size)
        steps_per_epoch = len(train_batches)
        if steps_per_epoch < 1:
            raise ConfigError(f"Data.Train.batch_size {batch} is larger than the training set ({len(train_ds)} "
                              "images): lower it")
        optimizer, by_epoch = build_optimizer(cfg["Optimizer"], net, steps_per_epoch, total_epochs,
                                              batch * world_size)
        if cfg["Optimizer"]["lr_reference_batch"]:
            log.info(f"learning rate {base_lr(cfg['Optimizer'], batch * world_size):.3g} = Optimizer.lr "
                     f"{cfg['Optimizer']['lr']:g} x global batch {batch * world_size} / "
                     f"{cfg['Optimizer']['lr_reference_batch']}")
        model = _prepare(net, cfg, optimizer)
        if resume:
            prefix = os.path.join(run_dir, "checkpoints", latest["checkpoint"])
            load_checkpoint(prefix, net, optimizer, weights_only, ema)  # weights, optimizer, LR schedule, EMA
            log.info(f"resumed from {prefix}: {state.epochs_done} epoch(s) done, {remaining} to go"
                     + (" (optimizer and schedule restarted: --weights-only)" if weights_only else ""))
        if write:  # only now: a resume that fails above leaves the run's config.yaml as it was
            for line in recovered:
                log.info(line)
            dump_config(cfg, os.path.join(run_dir, "config.yaml"))
            with open(os.path.join(run_dir, "labels.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(train_ds.info.class_names or map(str, range(train_ds.info.num_classes))) + "\n")
        if remaining <= 0:
            log.info(f"nothing to do: {state.epochs_done} of {total_epochs} epochs already done "
                     "(raise Global.epochs to train longer)")
            return write_metrics(run_dir, state) if write else {}

        monitor = TrainingMonitor(run_dir, state, total_epochs, saver.last_good, g["use_visualdl"], write, batch,
                                  world_size)
        progress = EpochProgBar(total_epochs, g["log_freq"], g["verbose"])
        # the EMA follows each step before anything reads it
        callbacks = [progress] + ([EMAUpdate(ema)] if ema else []) + \
            [monitor, paddle.callbacks.LRScheduler(by_step=not by_epoch, by_epoch=by_epoch)]
        loop = EpochLoop(model, train_batches, eval_loader, state, saver, monitor, progress, callbacks,
                         seed=g["seed"] + rank, eval_freq=g["eval_freq"], ema=ema, verbose=g["verbose"])
        loader_errors, previous_hook = [], threading.excepthook
        threading.excepthook = _catch_data_errors(loader_errors, previous_hook)
        try:
            loop.run(state.epochs_done + 1, total_epochs, run_dir if write else None)
        except KeyboardInterrupt:
            prefix = saver.save_interrupted(net, optimizer, state.to_dict(), ema)
            if write:
                write_metrics(run_dir, state)
            log.info(f"interrupted: saved {prefix}; continue with: python tools/train.py --resume {run_dir}")
            raise
        except Exception as e:
            worker_error = loader_errors.pop() if loader_errors else None
            if worker_error is not None and isinstance(e, SystemError):
                # a data-loading thread failed and Paddle reports only "Blocking queue is killed": say what failed
                raise worker_error from None
            raise
        finally:
            monitor.close()
            threading.excepthook = previous_hook
            for loader in (train_batches, eval_loader):
                loader.shutdown()
        metrics = write_metrics(run_dir, state) if write else {}
        if write:
            log.info(f"done: final top1 {100 * metrics['final_top1']:.2f}%, best top1 "
                     f"{100 * metrics['best_top1']:.2f}% (epoch {metrics['best_epoch']}"
                     f"{', EMA weights' if metrics['best_from'] == 'ema' else ''}), "
                     f"{metrics['train_seconds']:.0f}s training; results in {run_dir}")
        return metrics
    finally:
        if lock is not None:
            lock.release()


class EpochLoop:
    """The one owner of the absolute epoch (1-based, as the checkpoints and log lines number it): ``run`` goes
    ``for epoch in range(first, last + 1)`` (timm's and PaddleClas's loop) and hands ``epoch`` to the data (sampler,
    per-sample seeds, Mixup/CutMix), to Paddle's generator, to ``paddle.Model.fit`` for that one epoch, to the
    evaluation (after epochs that are multiples of ``eval_freq``, and the last) and to the checkpoint saver.

    A run resumed after epoch ``k`` therefore repeats exactly what the uninterrupted run did from ``k + 1`` on."""

    def __init__(self, model: paddle.Model, train_batches, eval_loader, state: RunState, saver: CheckpointSaver,
                 monitor: TrainingMonitor, progress: EpochProgBar, callbacks, seed: int, eval_freq: int = 1,
                 ema: Optional[ModelEMA] = None, verbose: int = 2):
        self.model, self.train_batches, self.eval_loader = model, train_batches, eval_loader
        self.state, self.saver, self.monitor, self.progress, self.callbacks = state, saver, monitor, progress, \
            callbacks
        self.seed, self.eval_freq, self.ema, self.verbose = seed, eval_freq, ema, verbose

    def evaluates(self, epoch: int, last: int) -> bool:
        return epoch % self.eval_freq == 0 or epoch == last

    def run(self, first: int, last: int, run_dir: Optional[str]) -> None:
        """Train epochs ``first`` .. ``last``; ``run_dir`` receives ``metrics.json`` after each (None: write nothing,
        another process writes)."""
        net = self.model.network
        for epoch in range(first, last + 1):
            self.train_batches.set_epoch(epoch)
            paddle.seed(epoch_seed(self.seed, epoch - 1))  # dropout, drop path
            self.monitor.begin_epoch(epoch)
            self.progress.absolute = epoch
            self.model.fit(self.train_batches, epochs=1, verbose=self.verbose, log_freq=self.progress.log_freq,
                           callbacks=self.callbacks)
            train_logs = self.monitor.epoch_logs()
            eval_logs = self.evaluate() if self.evaluates(epoch, last) else {}
            improved = self.state.record_epoch(epoch, train_logs, eval_logs)
            self.monitor.log_epoch(self.state.history[-1])
            self.saver.save_epoch(epoch, net, self.model._optimizer, self.state.to_dict(), improved, self.ema,
                                  best_is_ema=self.state.best_from == "ema")
            if run_dir is not None:
                with disk_errors(run_dir):
                    write_metrics(run_dir, self.state)

    def evaluate(self) -> Dict[str, Optional[float]]:
        """Loss and top-k of the weights, and of the EMA weights (``ema_*``) when the run keeps an EMA."""
        logs = _scalars(self.model.evaluate(self.eval_loader, verbose=0))
        if self.ema is not None:
            with self.ema.applied(self.model.network):
                logs.update({f"ema_{k}": v for k, v in _scalars(self.model.evaluate(self.eval_loader,
                                                                                     verbose=0)).items()})
        return logs


def _scalars(res: Dict[str, Any]) -> Dict[str, float]:
    """``paddle.Model.evaluate``'s results as floats (it gives lists and arrays)."""
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in res.items() if k == "loss" or k.startswith("acc")}


def _catch_data_errors(store: list, previous):
    """A ``threading.excepthook`` that keeps a data error from a DataLoader thread as one ``DataError`` (the worker's
    traceback reduced to its last line) instead of printing the traceback."""
    def hook(args):
        if isinstance(args.exc_value, DataError):
            last = str(args.exc_value).strip().splitlines()[-1]
            store.append(DataError(last.split("DataError: ", 1)[-1]))
        else:
            previous(args)
    return hook


def _default_run_name(cfg: Dict[str, Any]) -> str:
    src = cfg.get("__source__")
    return os.path.splitext(os.path.basename(src))[0] if src else cfg["Model"]["name"]


def evaluate(cfg: Dict[str, Any], weights: str) -> Dict[str, float]:
    """Top-k accuracy and loss of ``weights`` on the eval split of ``cfg``."""
    set_device(cfg["Global"]["device"], cfg["Global"]["cpu_threads"])
    eval_ds = build_dataset(cfg["Data"], "Eval")
    net = build_model_from_config(cfg, eval_ds.info.num_classes, weights=weights)
    model = _prepare(net, cfg)
    t0 = time.time()
    res = model.evaluate(eval_ds, batch_size=cfg["Data"]["Eval"]["batch_size"], verbose=0,
                         num_workers=cfg["Data"]["num_workers"])
    out = _scalars(res)
    if not np.isfinite(out.get("loss", 0.0)):
        raise WeightsError(f"the model produced non-finite outputs on the eval data (loss {out['loss']}): the weights "
                           f"'{weights}' are damaged (NaN or inf); evaluate an earlier checkpoint")
    out["seconds"] = round(time.time() - t0, 2)
    out["images"] = len(eval_ds)
    out["data"] = eval_ds.info.describe()
    return out


def load_run_config(path: Optional[str], overrides: Sequence[str], resume: Optional[str]) -> Dict[str, Any]:
    """The config to train with: ``-c`` (default quickstart), or on resume the run's own ``config.yaml``."""
    if resume and not path:
        path = os.path.join(resume, "config.yaml")
        if not os.path.isfile(path):
            raise MissingFileError(f"'{resume}' is not a run folder (no config.yaml): give the folder "
                                    "tools/train.py printed, e.g. --resume output/quickstart")
    return load_config(path, overrides)


def resolve_resume(resume: Optional[str], config_path: Optional[str], overrides: Sequence[str]) -> Optional[str]:
    """``--resume auto``: the newest run of this config's run name under ``Global.output_dir`` that has a checkpoint."""
    if resume != "auto":
        return resume
    cfg = load_config(config_path, overrides)
    name = cfg["Global"]["run_name"] or _default_run_name(cfg)
    out = cfg["Global"]["output_dir"]
    runs = [os.path.join(out, d) for d in (os.listdir(out) if os.path.isdir(out) else [])
            if (d == name or d.startswith(name + "-")) and read_latest(os.path.join(out, d, "checkpoints"))]
    if not runs:
        raise MissingFileError(f"--resume auto found no run of '{name}' with a checkpoint in '{out}'")
    return max(runs, key=lambda p: os.path.getmtime(os.path.join(p, "checkpoints", "latest.json")))
