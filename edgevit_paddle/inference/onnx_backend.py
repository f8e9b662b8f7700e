"""ONNX Runtime as a backend: ``inference.onnx`` (fp32) or ``inference_int8.onnx`` (post-training quantised), both
written by ``tools/export.py``. CPU through the default execution provider; GPU through the CUDA provider, written to
ONNX Runtime's documented API (``providers=[("CUDAExecutionProvider", {"device_id": N}), "CPUExecutionProvider"]``)
and not run here (no GPU, and the CPU wheel has no CUDA provider).
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import PredictorError
from .options import PredictorOptions

ONNX_FILES = {"fp32": "inference.onnx", "int8": "inference_int8.onnx"}


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def runtime_errors(ort) -> tuple:
    """What ONNX Runtime raises for a damaged or foreign file and for an input the model does not take (its own
    exception classes, which derive from ``Exception`` only, and the builtins it maps to); a ``TypeError`` or
    ``AttributeError`` from our code is not among them and keeps its traceback."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state
    own = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException", "InvalidProtobuf",
           "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail")
    return tuple(getattr(state, n) for n in own if hasattr(state, n)) + (RuntimeError, ValueError, OSError,
                                                                         MemoryError)


def onnx_file(model_dir: str, precision: str) -> str:
    return os.path.join(model_dir, ONNX_FILES.get(precision, ONNX_FILES["fp32"]))


class OnnxRuntimeBackend:
    """One ``onnxruntime.InferenceSession`` on ``model_dir``'s ONNX file for ``opts.precision``.

    Intra-op threads = ``cpu_threads``; their spin-waiting is off unless ``opts.ort_spin`` (README "Deploy": with one
    other busy process on the two cores, spinning took 1.8x longer at batch 1; on an idle machine it saved 5-16%).
    """

    name = "onnxruntime"

    def __init__(self, model_dir: str, opts: PredictorOptions, input_size: Sequence[int]):
        try:
            import onnxruntime as ort
        except ImportError:
            raise PredictorError("the onnxruntime backend needs `pip install onnxruntime` (a dependency of this "
                                 "package): reinstall it, or use --backend paddle") from None
        self.errors = runtime_errors(ort)
        path = onnx_file(model_dir, opts.precision)
        if not os.path.isfile(path):
            how = "--int8" if opts.precision == "int8" else "--format onnx (or all)"
            raise PredictorError(f"'{path}' is missing: export it with tools/export.py {how}, or use --backend "
                                 "paddle")
        if opts.device == "gpu":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise PredictorError("this onnxruntime has no CUDA provider: install onnxruntime-gpu instead of "
                                     "onnxruntime, or use --backend paddle")
            providers = [("CUDAExecutionProvider", {"device_id": opts.gpu_id}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        so = ort.SessionOptions()
        so.intra_op_num_threads = opts.cpu_threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if opts.ort_spin else "0")
        so.log_severity_level = 0 if opts.verbose else 3
        try:
            self.session = ort.InferenceSession(path, so, providers=providers)
        except self.errors as e:  # a truncated or foreign file: ONNX Runtime's own message, first line
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise PredictorError(f"cannot load '{path}' ({first}): the file is damaged or not from "
                                 "tools/export.py; re-export the model") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]
