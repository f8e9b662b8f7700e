"""Compiled CPU kernels for what Paddle 3.3.1 runs slowly, mostly on one thread, in dygraph training: depthwise
convolution forward and backward (EdgeViT's 5x5 LocalAgg and 3x3 positional encodings), the depthwise transposed
convolution of LocalProp, exact GELU, GroupNorm, LayerNorm (last dimension), the convolutions' per-channel bias
add, and the matrix products of 1x1 convolutions (the conv FFN, the attention projections) and Linear layers with
their bias, on the sgemm of the oneDNN inside Paddle's wheel (``gemm.cc``; ``products_usable``: only where that
library is loaded), and two layout changes Paddle copies element by element: heads split from and merged into
tokens, the global attention's sampler, and patches to channels for the patch embeddings (``layout.cc``).

They are Paddle custom operators (``paddle.utils.cpp_extension``; ``depthwise.cc``, ``gelu.cc``, ``norms.cc``,
``bias_add.cc``, ``gemm.cc``, ``layout.cc``): the work is split over the cores by ``parallel.h`` (threads started and
joined per call, so none spins between calls) and the inner loops are vectorised for the machine's CPU
(``-march=native``).
Built on first use (``build.py``) into a cache (``$EDGEVIT_KERNELS_DIR``, default
``~/.cache/edgevit_paddle/kernels/<key>``; the key covers the sources, Paddle's version, the compiler flags and the
CPU's instruction sets, so another machine builds its own): once (lines say when it starts, every 15 s that it goes
on, and how long it took), then loaded in well under a second. Where no compiler is found or the build fails, one
warning says why and the layers use Paddle's own ops (same results). ``EDGEVIT_KERNELS=0`` switches them off.

Used by ``layers`` in dygraph on CPU float32 only: GPUs keep cuDNN, and an exported program keeps Paddle's
standard ops (the same weights; deploying needs no library of ours).
"""
from __future__ import annotations

import os
import warnings
from typing import Optional

import paddle

from .. import cpu
from ..errors import first_line
from .build import BUILD_ERRORS, cache_dir, load_or_build
from .ops import (
    bias_add,
    depthwise_conv2d,
    depthwise_conv2d_transpose,
    gelu,
    group_norm,
    layer_norm,
    linear,
    patchify,
    pointwise_conv2d,
    run,
    subsample,
    swap12,
)

__all__ = ["BUILD_ERRORS", "available", "usable", "set_threads", "bias_add", "depthwise_conv2d",
           "depthwise_conv2d_transpose", "gelu", "group_norm", "layer_norm", "linear", "onednn_loaded",
           "patchify", "pointwise_conv2d", "products_usable", "subsample", "swap12"]

_state = {"ready": None, "reason": "", "threads": None}


def available() -> bool:
    """Whether the kernels are loaded (building them on the first call); False, once, with a warning, when they
    cannot be built, or when ``EDGEVIT_KERNELS=0``."""
    if _state["ready"] is not None:
        return _state["ready"]
    _state["ready"] = False
    if os.environ.get("EDGEVIT_KERNELS", "1") == "0":
        _state["reason"] = "switched off (EDGEVIT_KERNELS=0)"
        return False
    folder = cache_dir()
    try:
        load_or_build(folder)
    except BUILD_ERRORS as e:  # no compiler, a failed build, an unwritable cache: Paddle's ops instead
        _state["reason"] = f"{first_line(e)} (see {os.path.join(folder, 'build.log')})"
        warnings.warn(f"edgevit_paddle: compiled CPU kernels unavailable, using Paddle's ops: {_state['reason']}")
        return False
    _state["ready"] = True
    set_threads(_state["threads"])
    return True


@paddle.jit.not_to_static
def usable(x) -> bool:
    """Whether ``x`` goes to our kernels: dygraph (an exported program keeps Paddle's ops), CPU, float32, and the
    kernels available. Kept out of dy2static's rewriting, which would evaluate ``x.place`` of a static value."""
    return paddle.in_dynamic_mode() and x.place.is_cpu_place() and x.dtype == paddle.float32 and available()


@paddle.jit.not_to_static
def products_usable(x) -> bool:
    """Whether ``x`` goes to the matrix-product kernels (``gemm.cc``): ``usable(x)`` and Paddle's oneDNN loaded."""
    return usable(x) and onednn_loaded()


def onednn_loaded() -> bool:
    """Whether this process has Paddle's oneDNN and its OpenMP runtime loaded (``libdnnl.so.3``, ``libiomp5.so``: the
    libraries ``gemm.cc`` calls; Paddle's CPU wheels for x86 load both). Read once from the process's memory
    map."""
    if "onednn" not in _state:
        try:
            with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
                names = {os.path.basename(line.split()[-1]) for line in f if "/" in line}
        except OSError:  # not Linux: no /proc
            names = set()
        _state["onednn"] = {"libdnnl.so.3", "libiomp5.so"} <= names
    return _state["onednn"]


def set_threads(n: Optional[int]) -> None:
    """The threads our kernels use (None: ``cpu.usable_cores()``); the trainer passes what it gives Paddle."""
    _state["threads"] = n
    if _state["ready"]:
        run("edgevit_set_threads", paddle.zeros([1]), int(n or cpu.usable_cores()))
