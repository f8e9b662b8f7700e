"""Building the kernels: the sources, the compiler flags, the cache folder a build lives in, and the build or load
itself (under a file lock, so processes started together build once)."""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
import threading
import time
import warnings

import paddle

from .. import cpu
from ..files import exclusive, user_cache

_HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = [os.path.join(_HERE, f)
           for f in ("depthwise.cc", "gelu.cc", "norms.cc", "bias_add.cc", "gemm.cc", "layout.cc")]
HEADERS = [os.path.join(_HERE, "parallel.h")]
NAME = "edgevit_kernels"
# -fopenmp-simd: OpenMP's simd pragmas only, no OpenMP runtime (threads come from parallel.h)
CXX_FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-pthread"]
LD_FLAGS = ["-pthread"]

#: what a build or load that cannot work raises: no compiler or an unwritable cache (OSError), a failed compile
#: (CalledProcessError; RuntimeError from Paddle's cpp_extension), a built library that does not load (ImportError,
#: RuntimeError). A bug in this module (TypeError, NameError...) keeps its traceback instead of becoming the slow path.
BUILD_ERRORS = (OSError, RuntimeError, subprocess.SubprocessError, ImportError)

def cache_dir() -> str:
    """Where the build for this source, Paddle, compiler flags and CPU lives."""
    code = b""
    for path in SOURCES + HEADERS:
        with open(path, "rb") as f:
            code += f.read()
    facts = (paddle.__version__, CXX_FLAGS, sys.version_info[:2], sorted(cpu.flags()))
    key = hashlib.sha1(code + repr(facts).encode())
    key = key.hexdigest()[:16]
    root = os.environ.get("EDGEVIT_KERNELS_DIR") or user_cache("kernels")
    return os.path.join(root, key)


def compile_into(folder: str) -> None:
    """Compile into ``folder`` (the compiler's output goes to ``folder/build.log``); registers the operators."""
    from paddle.utils.cpp_extension import load

    from ..native_output import native_output_redirected
    os.makedirs(folder, exist_ok=True)
    print(f"edgevit_paddle: compiling the CPU kernels once into {folder} (about a CPU-minute: half a minute on two "
          "cores; the layers wait for it)", file=sys.stderr, flush=True)
    started = time.time()
    done, console = threading.Event(), _console()
    threading.Thread(target=_heartbeat, args=(done, started, console), daemon=True).start()
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
            done.set()
            for lg, level in zip(quiet, levels):
                lg.setLevel(level)
            if console is not sys.stderr:
                console.close()
    with open(os.path.join(folder, "ok"), "w", encoding="utf-8") as f:
        f.write(paddle.__version__)
    print(f"edgevit_paddle: CPU kernels built in {time.time() - started:.0f} s", file=sys.stderr, flush=True)


#: how often a build says it is still going
HEARTBEAT_S = 15


def _console():
    """Where the user sees stderr, before the build sends the process's own stderr to its log."""
    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w")
    except (AttributeError, OSError, io.UnsupportedOperation):  # a stream with no descriptor (a test's capture)
        return sys.stderr


def _heartbeat(done: threading.Event, started: float, console) -> None:
    while not done.wait(HEARTBEAT_S):
        try:
            print(f"edgevit_paddle: still compiling the CPU kernels ({time.time() - started:.0f} s so far)",
                  file=console, flush=True)
        except (OSError, ValueError):  # closed as the build ended
            return


def load_or_build(folder: str) -> None:
    """Register the kernels from ``folder``'s build, building it first when there is none (raises
    ``BUILD_ERRORS``)."""
    so = os.path.join(folder, NAME, f"{NAME}.so")
    os.makedirs(folder, exist_ok=True)
    with exclusive(os.path.join(folder, ".lock")):  # processes started together (a distributed launch) build once
        if os.path.isfile(os.path.join(folder, "ok")) and os.path.isfile(so):
            from paddle.utils.cpp_extension import load_op_meta_info_and_register_op
            load_op_meta_info_and_register_op(so)
        else:
            compile_into(folder)
