"""ONNX Runtime as a backend: ``inference.onnx`` (fp32) or ``inference_int8.onnx`` (post-training quantised), both
written by ``tools/export.py``. CPU through the default execution provider; GPU through the CUDA provider, written to
ONNX Runtime's documented API (``providers=[("CUDAExecutionProvider", {"device_id": N}), "CPUExecutionProvider"]``)
and not run here (no GPU, and the CPU wheel has no CUDA provider).
"""
from __future__ import annotations

import numpy as np

from ..errors import PredictorError
from .backend import Backend


class OnnxRuntimeBackend(Backend):
    """One ``onnxruntime.InferenceSession`` on the model folder's ONNX file for ``opts.precision``.

    Intra-op threads = ``cpu_threads``; their spin-waiting is off unless ``opts.ort_spin`` (spinning is faster on
    cores nothing else uses and much slower when something does: docs/results/deploy).
    """

    name = "onnxruntime"
    summary = "ONNX Runtime on the ONNX file (CPU; GPU with onnxruntime-gpu)"
    module = package = "onnxruntime"
    precisions = {"cpu": ("fp32", "int8"), "gpu": ("fp32",)}
    files = {"fp32": (("onnx",),), "int8": (("onnx_int8",),)}
    rank = {"cpu": 2}
    honours = ("ort_spin",)
    benchmark_group = "onnx"
    benchmark_mode = "onnxruntime"

    @classmethod
    def library_errors(cls) -> tuple:
        """ONNX Runtime's own exception classes (they derive from ``Exception`` only) and the builtins it maps its
        errors to."""
        from onnxruntime.capi import onnxruntime_pybind11_state as state
        own = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError", "RuntimeException",
               "InvalidProtobuf", "ModelLoaded", "NotImplemented", "InvalidGraph", "EPFail")
        return tuple(getattr(state, n) for n in own if hasattr(state, n)) + (RuntimeError, ValueError, OSError,
                                                                             MemoryError)

    def load(self, path: str) -> None:
        import onnxruntime as ort
        opts = self.options
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
        self.session = ort.InferenceSession(path, so, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]
