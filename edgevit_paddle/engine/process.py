"""What a training process sets up before it trains: signals, its place among the processes, the device and its
threads, the seeds, and where log lines go."""
from __future__ import annotations

import ctypes
import logging
import os
import random
import signal
import sys
import threading
from typing import Optional

import numpy as np
import paddle
import paddle.nn as nn

from .. import cpu, kernels
from ..errors import ConfigError
from ..paddle_compat import is_batch_norm, set_math_threads

log = logging.getLogger("edgevit_paddle")


#: what a training process's environment needs before Paddle loads (libgomp and glibc read it then):
#: - Paddle's own OpenMP loops let their idle threads sleep at once instead of spinning, which kept the cores from MKL
#:   and from our kernels. Not for inference, where it slowed Paddle Inference's oneDNN (figures:
#:   docs/results/HISTORY.md).
#: - glibc's malloc keeps freed memory for the next allocation instead of handing large blocks back to the system
#:   (no mmap for large blocks, no trimming): Paddle's CPU allocator frees every activation after use, so each large
#:   tensor was fresh pages, faulted in one at a time -- zeroing a [32, 144, 56, 56] tensor took 25 ms, 3.5 ms with
#:   this set (2-core Zen 4). The process keeps its peak memory until it ends, which a training process reaches anyway.
#: Only the training tool and the benchmark's training workers set these, and a user's own setting wins.
TRAINING_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(16 << 30)}


def training_env(env=None) -> dict:
    """``env`` (default ``os.environ``) with ``TRAINING_ENV`` added where it does not set those variables."""
    env = dict(os.environ if env is None else env)
    for key, value in TRAINING_ENV.items():
        env.setdefault(key, value)
    return env


#: glibc's mallopt parameters for the MALLOC_* variables of TRAINING_ENV (malloc.h: M_TRIM_THRESHOLD, M_MMAP_MAX)
_MALLOPT = {"MALLOC_TRIM_THRESHOLD_": -1, "MALLOC_MMAP_MAX_": -4}


def keep_freed_memory() -> bool:
    """TRAINING_ENV's glibc settings at run time, for a process started without them (``train()`` called from Python
    or a notebook); a variable the process was started with is glibc's already and is left alone. False where the C
    library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library by that name, or not glibc
        return False
    for key, param in _MALLOPT.items():
        if key not in os.environ:
            mallopt(param, min(int(TRAINING_ENV[key]), 2 ** 31 - 1))  # mallopt takes an int
    return True


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers and ``docker stop`` send): handled like Ctrl-C, the run saves ``interrupted``."""


def _terminate(signum, frame):
    raise Terminated()


def handle_signals() -> None:
    """Ctrl-C and SIGTERM raise in the main thread (the trainer saves a checkpoint and stops). Importing Paddle
    leaves SIGINT caught at the C level, and a run started in the background of a script inherits it ignored: both
    are given back to Python. Nothing changes when called from another thread."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _terminate)


def world() -> tuple:
    """(rank, number of processes) under ``paddle.distributed.launch``; (0, 1) otherwise."""
    env = paddle.distributed.ParallelEnv()
    return env.rank, env.world_size


def set_device(device: str, cpu_threads: Optional[int] = None, world_size: int = 1) -> Optional[int]:
    """Select the device; on CPU set the math threads of this process (``cpu_threads``, or with several processes
    the cores shared out among them so they do not oversubscribe the CPU). Returns the thread count set, if any."""
    if device == "gpu" and not paddle.is_compiled_with_cuda():
        raise ConfigError("Global.device is gpu but this Paddle build has no CUDA: install paddlepaddle-gpu "
                          "(see README) or use -o Global.device=cpu")
    paddle.set_device(device)
    if device != "cpu":
        return None
    keep_freed_memory()
    threads = cpu_threads or (max(1, cpu.usable_cores() // world_size) if world_size > 1 else None)
    if threads:
        set_math_threads(threads)
    kernels.set_threads(threads)  # our compiled kernels share the same cores, no more
    return threads


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


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
    has_bn = any(is_batch_norm(m) for m in net.sublayers())
    if enabled and world_size > 1 and has_bn:
        if device != "gpu":
            log.info("BatchNorm statistics are per process: Paddle has no SyncBatchNorm on CPU")
            return net
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return net
