"""How to run an exported model: ``PredictorOptions`` (checked against the backend table by
``backends.check_options`` before anything loads)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .. import cpu


@dataclass
class PredictorOptions:
    """How to run the model.

    ``backend``: a name from the backend table (``backends.BACKENDS``) or ``auto`` (the first installed, by the
    table's rank, that runs the device and precision and finds its files).
    ``precision``: ``fp32``; ``fp16`` (GPU, or the mobile runtimes); ``bf16`` (CPU, Paddle's oneDNN, AVX512-BF16 or
    AMX); ``int8`` (CPU, the model exported with ``--int8``); ``auto`` (``tools/infer.py``'s default): the fastest
    (backend, precision) that the export measured with a top-1 agreement with fp32 of at least ``min_agreement``
    (``inference.yml``'s ``precisions``; ``backends.choose_precision``), fp32 when nothing is recorded or passes.
    ``trt_shapes`` = (min, opt, max) batch sizes for TensorRT's dynamic batch.
    ``labels``: a class-name file (one per line) to show instead of the names in ``inference.yml``. ``ort_spin``: ONNX
    Runtime's threads spin-wait between ops (faster on cores nothing else uses, much slower when something does).
    ``use_tensorrt``, ``mkldnn``, ``trt_shapes`` are Paddle Inference's and ``ort_spin`` ONNX Runtime's (each backend
    declares the options it honours).
    """

    device: str = "cpu"
    backend: str = "auto"
    gpu_id: int = 0
    gpu_mem: int = 500
    use_tensorrt: bool = False
    precision: str = "fp32"
    cpu_threads: int = 2
    mkldnn: bool = True
    batch_size: int = 1
    trt_shapes: Tuple[int, int, int] = (1, 1, 8)
    verbose: bool = False
    labels: Optional[str] = None
    ort_spin: bool = False
    min_agreement: float = 0.995


def cpu_supports_bf16() -> bool:
    """Whether this CPU has AVX512-BF16 (or AMX), which oneDNN bfloat16 needs."""
    try:
        from ..paddle_compat import supports_bfloat16
        return supports_bfloat16()
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the build
        return cpu.has_bf16()
