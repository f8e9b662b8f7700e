"""OpenVINO as a backend: it reads the export's ONNX file directly (``inference.onnx``, or the QDQ
``inference_int8.onnx``), dynamic batch, height and width included, and runs it on the CPU with ``cpu_threads``
threads and its latency hint. Same preprocessing, same outputs (probabilities) and same errors as the other backends.
``auto`` does not pick it: on the 2-core AMD Zen 3 here it was sometimes faster than ONNX Runtime and sometimes
slower (README "Deploy").
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
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": str(opts.cpu_threads)}
        try:
            self.compiled = ov.Core().compile_model(path, "CPU", config)
        except self.errors as e:  # a truncated or foreign file: OpenVINO's own message, first line
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise PredictorError(f"cannot load '{path}' ({first}): the file is damaged or not from "
                                 "tools/export.py; re-export the model") from None
        self.request = self.compiled.create_infer_request()

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: batch})
        return np.array(self.request.get_output_tensor(0).data, copy=True)
