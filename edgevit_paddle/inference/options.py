"""How to run an exported model: ``PredictorOptions``, checked before anything loads."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from .. import cpu
from ..errors import PredictorError

BACKENDS = ("paddle", "onnxruntime", "openvino", "auto")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


@dataclass
class PredictorOptions:
    """How to run the model.

    ``backend``: ``paddle`` (Paddle Inference), ``onnxruntime``, ``openvino`` (the ONNX file, CPU), or ``auto`` (the
    fastest one installed for the device and precision, see ``predictor.resolve_backend``). ``precision``: ``fp32``;
    ``fp16`` (GPU); ``bf16`` (CPU, Paddle's oneDNN, AVX512-BF16 or AMX); ``int8`` (CPU, ONNX Runtime or OpenVINO, the
    model exported with ``--int8``).
    ``trt_shapes`` = (min, opt, max) batch sizes for TensorRT's dynamic batch. ``labels``: a class-name file (one
    per line) to show instead of the names in ``inference.yml``. ``ort_spin``: ONNX Runtime's threads spin-wait
    between ops (faster on cores nothing else uses, much slower when something does; off by default).
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


def cpu_supports_bf16() -> bool:
    """Whether this CPU has AVX512-BF16 (or AMX), which oneDNN bfloat16 needs."""
    try:
        from ..paddle_compat import supports_bfloat16
        return supports_bfloat16()
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the build
        return cpu.has_bf16()


def check_options(opts: PredictorOptions) -> None:
    """Refuse impossible combinations early, with the fix in the message (device availability is checked by the
    backend that runs the model)."""
    if opts.device not in ("cpu", "gpu"):
        raise PredictorError(f"unknown device '{opts.device}': use cpu or gpu")
    if opts.backend not in BACKENDS:
        raise PredictorError(f"unknown backend '{opts.backend}': use {', '.join(BACKENDS)}")
    valid = ("fp32", "fp16") if opts.device == "gpu" else ("fp32", "bf16", "int8")
    if opts.precision not in valid:
        raise PredictorError(f"precision {opts.precision} is not available on {opts.device}: use "
                             f"{' or '.join(valid)}")
    if opts.use_tensorrt and opts.device != "gpu":
        raise PredictorError("--use-tensorrt needs --device gpu")
    if opts.use_tensorrt and opts.backend in ("onnxruntime", "openvino"):
        raise PredictorError("--use-tensorrt runs through Paddle Inference: use --backend paddle (or auto)")
    if opts.precision == "bf16":
        if opts.backend in ("onnxruntime", "openvino"):
            raise PredictorError("bf16 runs through Paddle's oneDNN: use --backend paddle (or auto)")
        if not opts.mkldnn:
            raise PredictorError("bf16 runs through oneDNN: drop --no-mkldnn")
        if not cpu_supports_bf16():
            raise PredictorError("this CPU has no AVX512-BF16/AMX, which oneDNN bfloat16 needs: use --precision fp32")
    if opts.precision == "int8" and opts.backend == "paddle":
        raise PredictorError("int8 runs the ONNX file: use --backend openvino or onnxruntime (or auto)")
    if opts.batch_size < 1 or opts.cpu_threads < 1:
        raise PredictorError("--batch-size and --cpu-threads must be >= 1")
