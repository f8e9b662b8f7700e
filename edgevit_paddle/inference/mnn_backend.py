"""MNN (Alibaba's mobile runtime) as a backend: ``inference.mnn``, converted from the export's ONNX file
(``export/edge.py``), through MNN's Python module API on the CPU with ``cpu_threads`` threads. ``fp16`` asks MNN for
its low precision (fp16 arithmetic where the CPU has it: ARMv8.2 phones).
Batch, height and width stay dynamic. Same preprocessing, outputs (probabilities) and errors as the other backends.
"""
from __future__ import annotations

import numpy as np

from ..errors import PredictorError
from ..native_output import native_output_redirected
from . import model_folder
from .backend import Backend


class MnnBackend(Backend):
    """One MNN module on the model folder's ``inference.mnn``."""

    name = "mnn"
    summary = "MNN on inference.mnn (CPU; the phones' runtime, checked here on x86)"
    module = "MNN"
    package = "mnn"
    precisions = {"cpu": ("fp32", "fp16")}
    files = {"fp32": (("mnn",),), "fp16": (("mnn",),)}
    benchmark_group = "edge"
    benchmark_mode = "mnn"

    @classmethod
    def library_errors(cls) -> tuple:
        """MNN's bindings report a file they cannot read as a SystemError (a result with an exception set)."""
        return (SystemError, RuntimeError, ValueError, OSError, MemoryError)

    def load(self, path: str) -> None:
        with native_output_redirected(not self.options.verbose):  # MNN prints the CPU's features and its precision
            import MNN
            config = {"backend": "CPU", "numThread": int(self.options.cpu_threads),
                      "precision": "low" if self.options.precision == "fp16" else "high"}
            runtime = MNN.nn.create_runtime_manager((config,))
            names = self._io_names()
            self.module = MNN.nn.load_module_from_file(path, [names["input"]], [names["output"]],
                                                       runtime_manager=runtime)
        self.expr = MNN.expr
        if self.module is None:
            raise RuntimeError("MNN could not read the file")

    def _io_names(self) -> dict:
        """The input and output the export named in ``inference.yml`` (``mobile.mnn``): never MNN's own guess."""
        names = (model_folder.read_sidecar(self.model_dir).get("mobile") or {}).get("mnn")
        if not (isinstance(names, dict) and isinstance(names.get("input"), str)
                and isinstance(names.get("output"), str)):
            raise PredictorError(f"inference.yml in '{self.model_dir}' names no MNN input and output (mobile.mnn): "
                                 "re-export the model with tools/export.py")
        return names

    def run(self, batch: np.ndarray) -> np.ndarray:
        F = self.expr
        out = self.module.forward(F.const(batch, list(batch.shape), F.NCHW))
        return np.array(F.convert(out, F.NCHW).read(), dtype=np.float32, copy=True).reshape(batch.shape[0], -1)
