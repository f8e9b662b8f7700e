"""Every private name of Paddle this package relies on, in one place (``tests/test_paddle_compat.py`` checks each
against the installed Paddle, so a release that renames one fails there, loudly, not deep inside a model).

Where Paddle has public API it is used instead, elsewhere: ``paddle.Model``'s optimizer is the one the trainer
built, ``paddle.metric.Accuracy`` is named with its public ``name=``, Paddle's transforms are extended through their
documented ``_apply_image`` hook, and ``static_as_is`` (``paddle.jit.not_to_static``) keeps dy2static from converting
layers that need no conversion. What remains has no public counterpart in Paddle 3.3:

- the settings a layer was built with (Paddle keeps them as ``_``-prefixed attributes, with no accessors): our
  convolutions and norms subclass Paddle's and read their own settings through ``conv_settings``/``norm_settings``,
  BatchNorm folding reads a BatchNorm's running statistics through ``batch_norm_stats``;
- ``F.conv._conv_nd`` (a convolution without its bias, so that the bias add can take a fast path), ``paddle.base``'s
  thread count and bfloat16 check, ``_C_ops._run_custom_op`` (calling a custom operator loaded from a ``.so``), a
  DataLoader iterator's shutdown and the text of its report of a dead worker process, ``_BatchNormBase`` (the base of
  every BatchNorm) and ``paddle.flops``' table of layer types (read, never changed: ``complexity.custom_ops`` passes
  our layers to ``paddle.flops`` per call).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

#: the base class of Paddle's BatchNorm layers (BatchNorm, BatchNorm1D/2D/3D, SyncBatchNorm)
BatchNormBase = nn.layer.norm._BatchNormBase


#: PyTorch's names of a BatchNorm's running statistics in a state dict -> Paddle's
BATCH_NORM_STATE_NAMES = {"running_mean": "_mean", "running_var": "_variance"}


def is_batch_norm(layer: nn.Layer) -> bool:
    return isinstance(layer, BatchNormBase)


@dataclass(frozen=True)
class ConvSettings:
    """What a ``paddle.nn.Conv2D``/``Conv2DTranspose`` was built with (``padding`` as given; ``updated_padding`` as
    Paddle resolved it, for Conv2D)."""

    in_channels: int
    out_channels: int
    kernel_size: List[int]
    stride: List[int]
    padding: Any
    updated_padding: Any
    padding_algorithm: Optional[str]
    dilation: List[int]
    groups: int
    data_format: str
    padding_mode: str

    @property
    def depthwise(self) -> bool:
        return self.groups == self.in_channels == self.out_channels


def conv_settings(layer: nn.Layer) -> ConvSettings:
    return ConvSettings(layer._in_channels, layer._out_channels, list(layer._kernel_size), list(layer._stride),
                        layer._padding, getattr(layer, "_updated_padding", None),
                        getattr(layer, "_padding_algorithm", None), list(layer._dilation), layer._groups,
                        layer._data_format, getattr(layer, "_padding_mode", "zeros"))


def conv2d_without_bias(layer: nn.Conv2D, x: paddle.Tensor) -> paddle.Tensor:
    """What ``layer(x)`` computes before its bias add (Paddle's own dispatch: cuDNN, depthwise or plain conv2d)."""
    return F.conv._conv_nd(x, layer.weight, bias=None, stride=layer._stride, padding=layer._updated_padding,
                           padding_algorithm=layer._padding_algorithm, dilation=layer._dilation, groups=layer._groups,
                           data_format=layer._data_format, channel_dim=layer._channel_dim, op_type=layer._op_type,
                           use_cudnn=layer._use_cudnn)


@dataclass(frozen=True)
class NormSettings:
    """What a Paddle norm layer was built with (``groups`` for GroupNorm, ``normalized_shape`` for LayerNorm)."""

    epsilon: float
    groups: Optional[int] = None
    normalized_shape: Optional[Tuple[int, ...]] = None
    channels: Optional[int] = None


def norm_settings(layer: nn.Layer) -> NormSettings:
    shape = getattr(layer, "_normalized_shape", None)
    channels = getattr(layer, "_num_channels", None)
    return NormSettings(float(layer._epsilon), getattr(layer, "_num_groups", None),
                        tuple(shape) if shape is not None else None, int(channels) if channels is not None else None)


@dataclass(frozen=True)
class BatchNormStats:
    """A BatchNorm's running statistics (buffers, trained by momentum) and its settings."""

    mean: paddle.Tensor
    variance: paddle.Tensor
    epsilon: float
    momentum: float
    use_global_stats: Optional[bool]


def batch_norm_stats(layer: nn.Layer) -> BatchNormStats:
    return BatchNormStats(layer._mean, layer._variance, float(layer._epsilon), float(layer._momentum),
                          layer._use_global_stats)


def gelu_is_approximate(layer: nn.GELU) -> bool:
    return bool(layer._approximate)


def static_as_is(forward: Callable) -> Callable:
    """Mark a layer's ``forward`` as already valid in a static graph (straight-line Paddle calls, no tensor-dependent
    Python and no arithmetic on ``x.shape``, in it and in every sublayer it calls): ``paddle.jit.save`` then runs it
    as it is instead of converting its source (dy2static converts per layer *instance*, about 55 ms each: 10 of an
    EdgeViT-XXS export's 14 s). Public API: ``paddle.jit.not_to_static``."""
    return paddle.jit.not_to_static(forward)


def flops_counter(layer_type: type) -> Optional[Callable]:
    """The function ``paddle.flops`` counts ``layer_type`` with: its own entry, else that of the nearest Paddle base
    class it knows (``paddle.flops`` matches types exactly, so our subclasses of Paddle's layers need this)."""
    from paddle.hapi import dynamic_flops
    for base in layer_type.__mro__:
        if base in dynamic_flops.register_hooks:
            return dynamic_flops.register_hooks[base]
    return None


def lr_schedule(optimizer) -> Optional[Any]:
    """The ``paddle.optimizer.lr.LRScheduler`` an optimizer was built with (None for a fixed learning rate)."""
    schedule = getattr(optimizer, "_learning_rate", None)
    return schedule if isinstance(schedule, paddle.optimizer.lr.LRScheduler) else None


def set_math_threads(n: int) -> None:
    """The threads Paddle's CPU math (MKL, oneDNN, Eigen) uses in this process."""
    paddle.base.core.set_num_threads(int(n))


def supports_bfloat16() -> bool:
    """Whether Paddle's oneDNN can run bfloat16 on this CPU (AttributeError/RuntimeError where the build cannot
    say)."""
    return bool(paddle.base.core.supports_bfloat16())


def run_custom_op(name: str, *args):
    """Call a custom operator registered from a ``.so`` (``paddle.utils.cpp_extension.load``) by its name."""
    from paddle import _C_ops
    return _C_ops._run_custom_op(name, *args)


def loader_thread(iterator):
    """The thread a ``paddle.io.DataLoader`` iterator reads its batches in (None when it has none)."""
    return getattr(iterator, "_thread", None)


def abort_loader_iterator(iterator) -> None:
    """Wake whoever waits on a ``paddle.io.DataLoader`` iterator's queue with an error (Paddle 3.3's loader thread
    dies without doing so when the dataset raises, and the training step then waits forever, deaf to signals)."""
    if hasattr(iterator, "_exit_thread_unexpectedly"):
        iterator._exit_thread_unexpectedly()


def shutdown_loader_iterator(iterator) -> None:
    """Stop a ``paddle.io.DataLoader`` iterator's worker processes and threads now (not when it is collected)."""
    if hasattr(iterator, "_try_shutdown_all"):
        iterator._try_shutdown_all()


#: Paddle's two reports of a dead ``DataLoader`` worker process: its SIGCHLD handler's ``SystemError`` (raised
#: wherever the main thread is), or its reading thread's logged warning (the main thread then gets "Blocking queue is
#: killed")
_WORKER_DIED = (re.compile(r"DataLoader process \(pid (\d+)\) exited (.*?)\.? \(at "),
                re.compile(r"DataLoader \d+ workers exit unexpectedly, pids: ([\d, ]+)"))


def loader_worker_death(report: Union[BaseException, str]) -> Optional[str]:
    """What ended a ``paddle.io.DataLoader`` worker process (``"pid 2595 is killed by signal: Killed"``, or
    ``"pid 2595 exited unexpectedly"``) when ``report`` (an exception, or a logged message) is Paddle's report of it,
    else None."""
    if isinstance(report, BaseException) and not isinstance(report, SystemError):
        return None
    found = _WORKER_DIED[0].search(str(report))
    if found:
        return f"pid {found.group(1)} {found.group(2)}"
    found = _WORKER_DIED[1].search(str(report))
    return f"pid {found.group(1).strip()} exited unexpectedly" if found else None
