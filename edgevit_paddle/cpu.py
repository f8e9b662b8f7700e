"""The CPU this process runs on: its model name, instruction-set flags and the cores it may use.

The one reader of ``/proc/cpuinfo`` (the kernels' build key, the benchmark's machine record and the predictor's
bfloat16 check ask here). It imports nothing else of the package, so ``inference/`` can ship without the rest.
"""
from __future__ import annotations

import functools
import os
import platform
from typing import FrozenSet

#: the flags a benchmark row records (what decides which kernels Paddle, oneDNN and ONNX Runtime pick)
RECORDED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=None)
def _cpuinfo() -> tuple:
    """(model name, flags) of the first processor in ``/proc/cpuinfo``; (``platform.processor()``, none) where there
    is no such file."""
    name, flags = platform.processor() or "unknown", frozenset()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = frozenset(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return name, flags


def model_name() -> str:
    """``AMD EPYC 7B13`` and the like."""
    return _cpuinfo()[0]


def flags() -> FrozenSet[str]:
    """The instruction-set flags (``avx2``, ``avx512f``, ...); empty where the OS does not say."""
    return _cpuinfo()[1]


def recorded_flags() -> list:
    """Which of ``RECORDED_FLAGS`` this CPU has, in that order."""
    have = flags()
    return [f for f in RECORDED_FLAGS if f in have]


def has_bf16() -> bool:
    """Whether the CPU has AVX512-BF16 or AMX (what oneDNN's bfloat16 needs)."""
    return bool(flags() & {"avx512_bf16", "amx_bf16"})


def usable_cores() -> int:
    """The cores this process may run on (its affinity; not ``OMP_NUM_THREADS``, which importing Paddle sets to 1
    when it is unset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
