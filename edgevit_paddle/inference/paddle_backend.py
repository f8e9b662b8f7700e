"""Paddle Inference as a backend: CPU (oneDNN, optional bfloat16), GPU, GPU + TensorRT.

The CPU and GPU paths share everything but the ``paddle.inference.Config`` calls (``config_calls``), which are plain
data so they can be checked without a GPU. GPU and TensorRT were written to Paddle's documented API and have not been
run here (no GPU, and no GPU build of Paddle can be installed on our machines).
"""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np

from ..errors import PredictorError
from ..native_output import native_output_redirected
from .options import PredictorOptions

MODEL_FILES = ("inference.json", "inference.pdmodel")


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


def _model_file(model_dir: str) -> str:
    for name in MODEL_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return path
    raise PredictorError(f"no exported model in '{model_dir}' (expected inference.json + inference.pdiparams): "
                         "create one with tools/export.py")


def _tensorrt_model(model_file: str, model_dir: str, opts: PredictorOptions, input_size: Sequence[int]) -> str:
    """Convert a PIR model to a TensorRT one once (cached in ``<model_dir>/.cache/trt``); returns its prefix."""
    try:
        from paddle.tensorrt import Input, PrecisionMode, TensorRTConfig, convert
    except ImportError as e:
        raise PredictorError("TensorRT needs the GPU build of Paddle with TensorRT (paddle.tensorrt is missing): "
                             "install paddlepaddle-gpu and TensorRT >= 8.6, or drop --use-tensorrt") from e
    tag = f"{opts.precision}_b{'-'.join(map(str, opts.trt_shapes))}"
    cache = os.path.join(model_dir, ".cache", "trt", tag, "inference")
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


class PaddleBackend:
    """Runs ``model_dir``'s ``inference.json`` + ``inference.pdiparams`` with ``paddle.inference``."""

    name = "paddle"
    #: what Paddle raises for a damaged or foreign file and an input the model does not take (its C++ errors arrive
    #: as these builtins: InvalidArgument as ValueError, NotFound/PreconditionNotMet as RuntimeError, OutOfRange as
    #: IndexError, ResourceExhausted as MemoryError, Fatal as SystemError); a TypeError from our code keeps its
    #: traceback
    errors = (RuntimeError, ValueError, OSError, IndexError, MemoryError, SystemError)

    def __init__(self, model_dir: str, opts: PredictorOptions, input_size: Sequence[int]):
        import paddle
        from paddle import inference
        if opts.device == "gpu":
            if not paddle.is_compiled_with_cuda():
                raise PredictorError("--device gpu needs the GPU build of Paddle (pip install paddlepaddle-gpu, see "
                                     "README); this one is CPU-only: use --device cpu")
            if paddle.device.cuda.device_count() <= opts.gpu_id:
                raise PredictorError(f"no GPU {opts.gpu_id} visible (found {paddle.device.cuda.device_count()}): "
                                     "check CUDA_VISIBLE_DEVICES or --gpu-id")
        model_file = _model_file(model_dir)
        params = os.path.join(model_dir, "inference.pdiparams")
        if not os.path.isfile(params):
            raise PredictorError(f"'{params}' is missing: re-export the model with tools/export.py")
        legacy_trt = opts.use_tensorrt and not model_file.endswith(".json")
        if opts.use_tensorrt and not legacy_trt:
            prefix = _tensorrt_model(model_file, model_dir, opts, input_size)
            config = inference.Config(prefix + ".json", prefix + ".pdiparams")
        else:
            config = inference.Config(model_file, params)
        with native_output_redirected(not opts.verbose):
            for name, args in config_calls(opts, input_size, legacy_trt):
                getattr(config, name)(*args)
            self.config = config
            try:
                self.predictor = inference.create_predictor(config)
            except self.errors as e:  # a truncated or foreign file: Paddle's own message, first line
                raise PredictorError(f"cannot load the model in '{model_dir}' ({_first_line(e)}): the files are "
                                     "damaged or not from tools/export.py; re-export the model") from None
            self.input_name = self.predictor.get_input_names()[0]
            self.output_name = self.predictor.get_output_names()[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        handle = self.predictor.get_input_handle(self.input_name)
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(batch)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:200]
