"""Paddle Inference as a backend: CPU (oneDNN, optional bfloat16), GPU, GPU + TensorRT.

The CPU and GPU paths share everything but the ``paddle.inference.Config`` calls (``config_calls``), which are plain
data so they can be checked without a GPU. GPU and TensorRT were written to Paddle's documented API and have not been
run here (no GPU, and no GPU build of Paddle can be installed on our machines).
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PredictorError
from ..native_output import native_output_redirected
from . import model_folder
from .backend import Backend
from .options import PredictorOptions, cpu_supports_bf16


def config_calls(opts: PredictorOptions, input_size: Sequence[int] = (3, 224, 224), legacy_trt: bool = False
                 ) -> List[Tuple[str, tuple]]:
    """The ``paddle.inference.Config`` method calls for ``opts``, in order (shared by every device).

    ``legacy_trt``: a ``.pdmodel`` model with TensorRT, run through the subgraph engine (a PIR ``.json`` model is
    converted by ``paddle.tensorrt.convert`` instead, see ``_tensorrt_model``).
    """
    calls: List[Tuple[str, tuple]] = []
    if not opts.verbose:
        calls.append(("disable_glog_info", ()))
    if opts.device == "gpu":
        from paddle.inference import PrecisionType
        precision = PrecisionType.Half if opts.precision == "fp16" else PrecisionType.Float32
        calls += [("enable_use_gpu", (opts.gpu_mem, opts.gpu_id, precision)), ("disable_mkldnn", ())]
        if opts.precision == "fp16" and not opts.use_tensorrt:
            calls.append(("exp_disable_mixed_precision_ops", ({"feed", "fetch"},)))
        if legacy_trt:
            c, h, w = input_size
            lo, opt, hi = opts.trt_shapes
            calls += [("enable_tensorrt_engine", (1 << 30, hi, 3, precision, True, False)),
                      ("set_trt_dynamic_shape_info", ({"x": [lo, c, h, w]}, {"x": [hi, c, h, w]},
                                                      {"x": [opt, c, h, w]}))]
    else:
        calls += [("disable_gpu", ()), ("set_cpu_math_library_num_threads", (opts.cpu_threads,))]
        if opts.mkldnn:
            calls += [("enable_mkldnn", ()), ("set_mkldnn_cache_capacity", (10,))]
            if opts.precision == "bf16":
                calls.append(("enable_mkldnn_bfloat16", ()))
        else:
            calls.append(("disable_mkldnn", ()))
    calls += [("enable_new_executor", ()), ("enable_memory_optim", ())]
    return calls


def _tensorrt_model(model_file: str, model_dir: str, opts: PredictorOptions, input_size: Sequence[int]) -> str:
    """Convert a PIR model to a TensorRT one once (cached in ``<model_dir>/.cache/trt``); returns its prefix."""
    try:
        from paddle.tensorrt import Input, PrecisionMode, TensorRTConfig, convert
    except ImportError as e:
        raise PredictorError("TensorRT needs the GPU build of Paddle with TensorRT (paddle.tensorrt is missing): "
                             "install paddlepaddle-gpu and TensorRT >= 8.6, or drop --use-tensorrt") from e
    tag = f"{opts.precision}_b{'-'.join(map(str, opts.trt_shapes))}"
    cache = os.path.join(model_dir, model_folder.CACHE, "trt", tag, model_folder.PREFIX)
    if not os.path.isfile(cache + ".json"):
        c, h, w = input_size
        lo, opt, hi = opts.trt_shapes
        inp = Input(min_input_shape=(lo, c, h, w), optim_input_shape=(opt, c, h, w), max_input_shape=(hi, c, h, w),
                    name="x")
        cfg = TensorRTConfig(inputs=[inp])
        cfg.precision_mode = PrecisionMode.FP16 if opts.precision == "fp16" else PrecisionMode.FP32
        cfg.save_model_dir = os.path.dirname(cache)
        convert(model_file[: -len(".json")], cfg)
    return cache


class PaddleBackend(Backend):
    """Runs the model folder's ``inference.json`` (or a legacy ``inference.pdmodel``) + ``inference.pdiparams`` with
    ``paddle.inference``."""

    name = "paddle"
    summary = "Paddle Inference (CPU with oneDNN, bf16 on AVX512-BF16/AMX CPUs; GPU, TensorRT)"
    module = "paddle"
    package = "paddlepaddle (or paddlepaddle-gpu)"
    precisions = {"cpu": ("fp32", "bf16"), "gpu": ("fp32", "fp16")}
    files = {p: (("paddle_program", "paddle_legacy_program"), ("paddle_params",)) for p in ("fp32", "bf16", "fp16")}
    rank = {"cpu": 3, "gpu": 1}
    honours = ("use_tensorrt", "mkldnn", "trt_shapes")
    benchmark_group = "paddle"
    benchmark_mode = "predictor"
    benchmark_extra = {"nofold": dict(fold=False), "noonednn": dict(mkldnn=False)}

    @classmethod
    def library_errors(cls) -> tuple:
        """Paddle's C++ errors arrive as these builtins: InvalidArgument as ValueError, NotFound/PreconditionNotMet
        as RuntimeError, OutOfRange as IndexError, ResourceExhausted as MemoryError, Fatal as SystemError."""
        return (RuntimeError, ValueError, OSError, IndexError, MemoryError, SystemError)

    @classmethod
    def option_problem(cls, opts: PredictorOptions) -> Optional[str]:
        if opts.use_tensorrt and opts.device != "gpu":
            return "--use-tensorrt needs --device gpu"
        if opts.precision == "bf16":
            if not opts.mkldnn:
                return "bf16 runs through oneDNN: drop --no-mkldnn"
            if not cpu_supports_bf16():
                return "this CPU has no AVX512-BF16/AMX, which oneDNN bfloat16 needs: use --precision fp32"
        return None

    def load(self, model_file: str, params: str) -> None:
        import paddle
        from paddle import inference
        opts = self.options
        if opts.device == "gpu":
            if not paddle.is_compiled_with_cuda():
                raise PredictorError("--device gpu needs the GPU build of Paddle (pip install paddlepaddle-gpu, see "
                                     "README); this one is CPU-only: use --device cpu")
            if paddle.device.cuda.device_count() <= opts.gpu_id:
                raise PredictorError(f"no GPU {opts.gpu_id} visible (found {paddle.device.cuda.device_count()}): "
                                     "check CUDA_VISIBLE_DEVICES or --gpu-id")
        legacy_trt = opts.use_tensorrt and not model_file.endswith(".json")
        if opts.use_tensorrt and not legacy_trt:
            prefix = _tensorrt_model(model_file, self.model_dir, opts, self.input_size)
            config = inference.Config(prefix + ".json", prefix + ".pdiparams")
        else:
            config = inference.Config(model_file, params)
        with native_output_redirected(not opts.verbose):
            for name, args in config_calls(opts, self.input_size, legacy_trt):
                getattr(config, name)(*args)
            self.config = config
            self.predictor = inference.create_predictor(config)
            self.input_name = self.predictor.get_input_names()[0]
            self.output_name = self.predictor.get_output_names()[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        handle = self.predictor.get_input_handle(self.input_name)
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(batch)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()
