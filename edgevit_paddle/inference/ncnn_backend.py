"""ncnn (Tencent's mobile runtime) as a backend: ``inference.ncnn.param`` + ``.bin``, converted from the export's
ONNX file by pnnx (``export/edge.py``) for the exported input size, on the CPU with ``cpu_threads`` threads. ncnn has
no batch dimension: a batch runs image by image. ``fp16`` turns on ncnn's fp16 storage and arithmetic (used where the
CPU has them: ARM phones; on x86 ncnn stores in fp16 where it can). Same preprocessing, outputs (probabilities) and
errors as the other backends.
"""
from __future__ import annotations

import numpy as np

from ..errors import PredictorError
from .backend import Backend


class NcnnBackend(Backend):
    """One ``ncnn.Net`` on the model folder's ncnn files (input ``in0``, output ``out0``: pnnx's names)."""

    name = "ncnn"
    summary = "ncnn on inference.ncnn.param/.bin (CPU, the exported size only; the phones' runtime, checked on x86)"
    module = package = "ncnn"
    precisions = {"cpu": ("fp32", "fp16")}
    files = {"fp32": (("ncnn_param",), ("ncnn_bin",)), "fp16": (("ncnn_param",), ("ncnn_bin",))}
    benchmark_group = "edge"
    benchmark_mode = "ncnn"

    def load(self, param: str, weights: str) -> None:
        import ncnn
        self.ncnn = ncnn
        self.net = ncnn.Net()
        fp16 = self.options.precision == "fp16"
        opt = self.net.opt
        opt.num_threads = int(self.options.cpu_threads)
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = fp16
        if self.net.load_param(param) != 0:  # it prints the layer it cannot create (e.g. an op ncnn lacks)
            raise RuntimeError(f"ncnn cannot read the graph in {param}")
        if self.net.load_model(weights) != 0:
            raise RuntimeError(f"ncnn cannot read the weights in {weights} (too short for the graph)")
        self.input_name, self.output_name = self.net.input_names()[0], self.net.output_names()[0]  # in0, out0

    def run(self, batch: np.ndarray) -> np.ndarray:
        if tuple(batch.shape[1:]) != self.input_size:
            raise PredictorError(f"the ncnn files take {'x'.join(map(str, self.input_size[1:]))} inputs only (the "
                                 f"exported size), got {batch.shape[2]}x{batch.shape[3]}: use another --backend for "
                                 "other sizes, or re-export at that size")
        out = []
        for image in batch:
            with self.net.create_extractor() as ex:
                ex.input(self.input_name, self.ncnn.Mat(image[None], batch_index=0).clone())
                rc, mat = ex.extract(self.output_name)
                if rc != 0:
                    raise RuntimeError(f"ncnn failed on the input (error {rc})")
                out.append(np.array(mat.numpy(batch_index=0), dtype=np.float32, copy=True).reshape(-1))
        return np.stack(out)
