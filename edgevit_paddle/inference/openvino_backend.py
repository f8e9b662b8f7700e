"""OpenVINO as a backend: it reads the export's ONNX file directly (``inference.onnx``, or the QDQ
``inference_int8.onnx``) and runs it on the CPU with ``cpu_threads`` threads, its latency hint and the precision asked
for: float32 (which OpenVINO must be told: on CPUs with AVX512-BF16 or AMX it would compute in bfloat16), bfloat16
(``bf16``, on those CPUs only; the fp32 file) or the INT8 file, compiled for the static shape of each batch size it is
given. Same preprocessing, same outputs (probabilities) and same errors as the other backends.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import cpu
from .backend import Backend
from .options import PredictorOptions

#: compiled shapes kept at once (a batch of each size up to the predictor's batch size and a last, smaller one)
MAX_SHAPES = 4


class OpenVinoBackend(Backend):
    """One OpenVINO compiled model (CPU) per input shape, on the model folder's ONNX file for ``opts.precision``."""

    name = "openvino"
    summary = "OpenVINO on the ONNX file (CPU)"
    module = package = "openvino"
    precisions = {"cpu": ("fp32", "bf16", "int8")}
    files = {"fp32": (("onnx",),), "bf16": (("onnx",),), "int8": (("onnx_int8",),)}
    rank = {"cpu": 1}
    benchmark_group = "onnx"
    benchmark_mode = "openvino"

    @classmethod
    def library_errors(cls) -> tuple:
        """OpenVINO's exceptions derive from RuntimeError."""
        return (RuntimeError, ValueError, OSError, MemoryError)

    @classmethod
    def option_problem(cls, opts: PredictorOptions) -> Optional[str]:
        if opts.precision == "bf16" and not cpu.has_bf16():
            return "this CPU has no AVX512-BF16/AMX, which OpenVINO's bfloat16 needs: use --precision fp32"
        return None

    def load(self, path: str) -> None:
        import openvino as ov
        self.ov = ov
        # the precision said outright: on a CPU with AVX512-BF16 or AMX OpenVINO otherwise computes in bfloat16
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(self.options.cpu_threads),
                       "INFERENCE_PRECISION_HINT": "bf16" if self.options.precision == "bf16" else "f32"}
        self.core = ov.Core()
        self.model = self.core.read_model(path)
        self.requests = {}  # input shape -> an infer request of the model compiled for that shape
        self._request([1, *self.input_size])  # compiled now, so that a damaged file fails here

    def _request(self, shape):
        """The model compiled for one static input shape (OpenVINO picks faster kernels for a static shape than for
        the file's dynamic batch, height and width): each new batch size compiles once."""
        key = tuple(shape)
        if key not in self.requests:
            if len(self.requests) >= MAX_SHAPES:
                del self.requests[next(iter(self.requests))]  # the oldest
            model = self.model.clone()
            model.reshape({model.inputs[0].any_name: self.ov.PartialShape(list(key))})
            self.requests[key] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self.requests[key]

    def run(self, batch: np.ndarray) -> np.ndarray:
        request = self._request(batch.shape)
        request.infer({0: batch})
        return np.array(request.get_output_tensor(0).data, copy=True)
