"""Compiled CPU kernels for what Paddle 3.3.1 runs slowly, mostly on one thread, in dygraph training: depthwise
convolution forward and backward (EdgeViT's 5x5 LocalAgg and 3x3 positional encodings), the depthwise transposed
convolution of LocalProp, exact GELU, GroupNorm, LayerNorm (last dimension) and the convolutions' per-channel bias
add.

They are Paddle custom operators (``paddle.utils.cpp_extension``; ``depthwise.cc``, ``elementwise.cc``): the work is
split over the cores by ``parallel.h`` (threads started and joined per call, so none spins between calls) and the
inner loops are vectorised for the machine's CPU (``-march=native``). Built on first use into a cache
(``$EDGEVIT_KERNELS_DIR``, default ``~/.cache/edgevit_paddle/kernels/<key>``; the key covers the sources, Paddle's
version, the compiler flags and the CPU's instruction sets, so another machine builds its own): about 15 s once,
then loaded in well under a second. Where no compiler is found or the build fails, one warning says why and the
layers use Paddle's own ops (same results). ``EDGEVIT_KERNELS=0`` switches them off.

Used by ``layers`` in dygraph on CPU float32 only: GPUs keep cuDNN, and an exported program keeps Paddle's
standard ops (the same weights; deploying needs no library of ours).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import warnings
from typing import Optional

import paddle

from .. import cpu
from ..files import exclusive
from ..paddle_compat import run_custom_op

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = [os.path.join(_HERE, f) for f in ("depthwise.cc", "elementwise.cc")]
HEADERS = [os.path.join(_HERE, "parallel.h")]
NAME = "edgevit_kernels"
# -fopenmp-simd: OpenMP's simd pragmas only, no OpenMP runtime (threads come from parallel.h)
CXX_FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-pthread"]
LD_FLAGS = ["-pthread"]

_state = {"ready": None, "reason": "", "threads": None}

#: what a build or load that cannot work raises: no compiler or an unwritable cache (OSError), a failed compile
#: (CalledProcessError; RuntimeError from Paddle's cpp_extension), a built library that does not load (ImportError,
#: RuntimeError). A bug in this module (TypeError, NameError...) keeps its traceback instead of becoming the slow path.
BUILD_ERRORS = (OSError, RuntimeError, subprocess.SubprocessError, ImportError)

#: what a training process's environment needs before Paddle loads (libgomp reads it then): Paddle's own OpenMP loops
#: let their idle threads sleep at once instead of spinning, which kept the cores from MKL and from our kernels
#: (gn/conv training at batch 32: 18.1 -> 20.6 images/s). Not for inference: it slowed Paddle Inference's oneDNN at
#: batch 1 from 24.6-28.3 to 34.6-35.6 ms (ONNX Runtime unaffected), so only the training tool and the benchmark's
#: training workers set it, and a user's own setting wins.
TRAINING_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def training_env(env=None) -> dict:
    """``env`` (default ``os.environ``) with ``TRAINING_ENV`` added where it does not set those variables."""
    env = dict(os.environ if env is None else env)
    for key, value in TRAINING_ENV.items():
        env.setdefault(key, value)
    return env


def cache_dir() -> str:
    """Where the build for this source, Paddle, compiler flags and CPU lives."""
    code = b""
    for path in SOURCES + HEADERS:
        with open(path, "rb") as f:
            code += f.read()
    facts = (paddle.__version__, CXX_FLAGS, sys.version_info[:2], sorted(cpu.flags()))
    key = hashlib.sha1(code + repr(facts).encode())
    key = key.hexdigest()[:16]
    root = os.environ.get("EDGEVIT_KERNELS_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "edgevit_paddle",
                                                                 "kernels")
    return os.path.join(root, key)


def _build(folder: str) -> None:
    """Compile into ``folder`` (the compiler's output goes to ``folder/build.log``); registers the operators."""
    from paddle.utils.cpp_extension import load

    from ..native_output import native_output_redirected
    os.makedirs(folder, exist_ok=True)
    print(f"edgevit_paddle: compiling the CPU kernels once (about 15 s) into {folder}", file=sys.stderr, flush=True)
    with open(os.path.join(folder, "build.log"), "w", encoding="utf-8") as log, \
            native_output_redirected(True, log), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import logging
        quiet = [logging.getLogger(n) for n in ("", "paddle", "paddle.utils.cpp_extension")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        try:
            load(name=NAME, sources=SOURCES, extra_cxx_cflags=CXX_FLAGS, extra_ldflags=LD_FLAGS,
                 extra_include_paths=[_HERE], build_directory=folder)
        finally:
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)
    with open(os.path.join(folder, "ok"), "w", encoding="utf-8") as f:
        f.write(paddle.__version__)


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
    so = os.path.join(folder, NAME, f"{NAME}.so")
    try:
        os.makedirs(folder, exist_ok=True)
        with exclusive(os.path.join(folder, ".lock")):  # processes started together (a distributed launch) build once
            if os.path.isfile(os.path.join(folder, "ok")) and os.path.isfile(so):
                from paddle.utils.cpp_extension import load_op_meta_info_and_register_op
                load_op_meta_info_and_register_op(so)
            else:
                _build(folder)
    except BUILD_ERRORS as e:  # no compiler, a failed build, an unwritable cache: Paddle's ops instead
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        _state["reason"] = f"{first} (see {os.path.join(folder, 'build.log')})"
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


def set_threads(n: Optional[int]) -> None:
    """The threads our kernels use (None: ``cpu.usable_cores()``); the trainer passes what it gives Paddle."""
    _state["threads"] = n
    if _state["ready"]:
        _run("edgevit_set_threads", paddle.zeros([1]), int(n or cpu.usable_cores()))


def _run(op: str, *args):
    """Run a custom operator on contiguous tensors (the kernels read them as dense arrays; a transposed view is
    copied first) and return its first output."""
    args = [a.contiguous() if isinstance(a, paddle.Tensor) and not a.is_contiguous() else a for a in args]
    out = run_custom_op(op, *args)
    return out[0] if isinstance(out, (list, tuple)) else out


def depthwise_conv2d(x: paddle.Tensor, weight: paddle.Tensor, padding: int) -> paddle.Tensor:
    """Stride-1 depthwise convolution, ``weight`` [C, 1, K, K], K = 2 * padding + 1 (no bias)."""
    return _run("edgevit_dwconv", x, weight, int(padding))


def bias_add(x: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """``x`` [N, C, ...] plus a per-channel ``bias`` [C]."""
    return _run("edgevit_bias_add", x, bias)


def gelu(x: paddle.Tensor) -> paddle.Tensor:
    """Exact (erf) GELU."""
    return _run("edgevit_gelu", x)


def group_norm(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, groups: int, eps: float) -> paddle.Tensor:
    """GroupNorm of an [N, C, ...] tensor with a per-channel affine."""
    return _run("edgevit_group_norm", x, weight, bias, int(groups), float(eps))


def layer_norm(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, eps: float) -> paddle.Tensor:
    """LayerNorm over the last dimension with its affine."""
    return _run("edgevit_layer_norm", x, weight, bias, float(eps))


def depthwise_conv2d_transpose(x: paddle.Tensor, weight: paddle.Tensor) -> paddle.Tensor:
    """Depthwise transposed convolution with kernel = stride (``weight`` [C, 1, R, R]; no bias)."""
    return _run("edgevit_dwconv_t", x, weight)
