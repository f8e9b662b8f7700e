"""OpenVINO as a backend: it reads the export's ONNX file directly (``inference.onnx``, or the QDQ
``inference_int8.onnx``), dynamic batch, height and width included, and runs it on the CPU with ``cpu_threads``
threads, its latency hint and float32 (which OpenVINO must be told: on CPUs with AVX512-BF16 or AMX it would
compute in bfloat16), compiled for the static shape of each batch size it is given. Same preprocessing, same outputs
(probabilities) and same errors as the other backends.
``auto`` picks it on the CPU, fp32 and int8 (measured faster than ONNX Runtime, README "Deploy").
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import PredictorError
from .onnx_backend import onnx_file
from .options import PredictorOptions

#: what OpenVINO raises for a damaged or foreign file and for an input the model does not take (its exceptions derive
#: from RuntimeError); a TypeError or AttributeError from our code keeps its traceback
RUNTIME_ERRORS = (RuntimeError, ValueError, OSError, MemoryError)
#: compiled shapes kept at once (a batch of each size up to the predictor's batch size and a last, smaller one)
MAX_SHAPES = 4


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoBackend:
    """One OpenVINO compiled model (CPU) on ``model_dir``'s ONNX file for ``opts.precision``."""

    name = "openvino"
    errors = RUNTIME_ERRORS

    def __init__(self, model_dir: str, opts: PredictorOptions, input_size: Sequence[int]):
        try:
            import openvino as ov
        except ImportError:
            raise PredictorError("the openvino backend needs `pip install openvino`: install it, or use --backend "
                                 "onnxruntime") from None
        if opts.device != "cpu":
            raise PredictorError("the openvino backend runs on the CPU here: use --device cpu, or --backend paddle "
                                 "for a GPU")
        path = onnx_file(model_dir, opts.precision)
        if not os.path.isfile(path):
            how = "--int8" if opts.precision == "int8" else "--format onnx (or all)"
            raise PredictorError(f"'{path}' is missing: export it with tools/export.py {how}, or use --backend "
                                 "paddle")
        self.ov = ov
        # f32 said outright: on a CPU with AVX512-BF16 or AMX OpenVINO otherwise computes in bfloat16 (seen on Zen 5)
        self.config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(opts.cpu_threads),
                       "INFERENCE_PRECISION_HINT": "f32"}
        self.core = ov.Core()
        try:
            self.model = self.core.read_model(path)
            self.requests = {}  # input shape -> an infer request of the model compiled for that shape
            self._request([1, *input_size])  # compiled now, so that a damaged file fails here
        except self.errors as e:  # a truncated or foreign file: OpenVINO's own message, first line
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise PredictorError(f"cannot load '{path}' ({first}): the file is damaged or not from "
                                 "tools/export.py; re-export the model") from None

    def _request(self, shape):
        """The model compiled for one static input shape (OpenVINO picks faster kernels for a static shape than for
        the file's dynamic batch, height and width; README "Deploy"): each new batch size compiles once (0.4 s for
        EdgeViT-XXS at batch 8 here)."""
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
