"""A Paddle Inference predictor for exported models: CPU (oneDNN, optional bfloat16), GPU, GPU + TensorRT.

The CPU and GPU paths share everything but the ``paddle.inference.Config`` calls (``config_calls``), which are plain
data so they can be checked without a GPU. GPU and TensorRT were written to Paddle's documented API and have not been
run here (no GPU, and no GPU build of Paddle can be installed on our machines).
"""
from __future__ import annotations

import contextlib
import glob
import os
import sys
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from ..errors import PredictorError
from ..image import IMG_EXTENSIONS, read_image
from .preprocess import Preprocessor

MODEL_FILES = ("inference.json", "inference.pdmodel")


@dataclass
class PredictorOptions:
    """How to run the model. ``trt_shapes`` = (min, opt, max) batch sizes for TensorRT's dynamic batch."""

    device: str = "cpu"
    gpu_id: int = 0
    gpu_mem: int = 500
    use_tensorrt: bool = False
    precision: str = "fp32"
    cpu_threads: int = 2
    mkldnn: bool = True
    batch_size: int = 1
    trt_shapes: Tuple[int, int, int] = (1, 1, 8)
    verbose: bool = False


def cpu_supports_bf16() -> bool:
    """Whether this CPU has AVX512-BF16 (or AMX), which oneDNN bfloat16 needs."""
    try:
        import paddle
        return bool(paddle.base.core.supports_bfloat16())
    except Exception:  # pragma: no cover - depends on the build
        try:
            with open("/proc/cpuinfo") as f:
                flags = f.read()
            return "avx512_bf16" in flags or "amx_bf16" in flags
        except OSError:
            return False


def check_options(opts: PredictorOptions) -> None:
    """Refuse impossible combinations early, with the fix in the message."""
    import paddle
    if opts.device not in ("cpu", "gpu"):
        raise PredictorError(f"unknown device '{opts.device}': use cpu or gpu")
    valid = ("fp32", "fp16") if opts.device == "gpu" else ("fp32", "bf16")
    if opts.precision not in valid:
        raise PredictorError(f"precision {opts.precision} is not available on {opts.device}: use "
                             f"{' or '.join(valid)}")
    if opts.use_tensorrt and opts.device != "gpu":
        raise PredictorError("--use-tensorrt needs --device gpu")
    if opts.device == "gpu":
        if not paddle.is_compiled_with_cuda():
            raise PredictorError("--device gpu needs the GPU build of Paddle (pip install paddlepaddle-gpu, see "
                                 "README); this one is CPU-only: use --device cpu")
        if paddle.device.cuda.device_count() <= opts.gpu_id:
            raise PredictorError(f"no GPU {opts.gpu_id} visible (found {paddle.device.cuda.device_count()}): check "
                                 "CUDA_VISIBLE_DEVICES or --gpu-id")
    if opts.precision == "bf16":
        if not opts.mkldnn:
            raise PredictorError("bf16 runs through oneDNN: drop --no-mkldnn")
        if not cpu_supports_bf16():
            raise PredictorError("this CPU has no AVX512-BF16/AMX, which oneDNN bfloat16 needs: use --precision fp32")
    if opts.batch_size < 1 or opts.cpu_threads < 1:
        raise PredictorError("--batch-size and --cpu-threads must be >= 1")


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


def load_sidecar(model_dir: str) -> Dict[str, Any]:
    path = os.path.join(model_dir, "inference.yml")
    if not os.path.isfile(path):
        raise PredictorError(f"'{path}' is missing: it holds the preprocessing and labels; re-export with "
                             "tools/export.py")
    with open(path, encoding="utf-8") as f:
        meta = yaml.safe_load(f) or {}
    for key in ("input_size", "preprocess"):
        if key not in meta:
            raise PredictorError(f"'{path}' has no '{key}': re-export the model with tools/export.py")
    return meta


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


@contextlib.contextmanager
def native_output_silenced(enabled: bool = True):
    """Silence what Paddle's C++ side prints straight to the process's stdout/stderr (oneDNN pass names, glog)."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)


class Predictor:
    """Load ``model_dir`` (from ``tools/export.py``) and classify images.

    Example:
        >>> p = Predictor("output/run/inference", PredictorOptions(cpu_threads=2))
        >>> for result in p.predict_paths(["a.jpg", "b.png"], topk=5): print(result)
    """

    def __init__(self, model_dir: str, options: Optional[PredictorOptions] = None):
        from paddle import inference

        self.options = opts = options or PredictorOptions()
        if not os.path.isdir(model_dir):
            raise PredictorError(f"model folder '{model_dir}' not found: give the folder tools/export.py wrote")
        model_file = _model_file(model_dir)
        params = os.path.join(model_dir, "inference.pdiparams")
        if not os.path.isfile(params):
            raise PredictorError(f"'{params}' is missing: re-export the model with tools/export.py")
        self.meta = load_sidecar(model_dir)
        check_options(opts)
        self.input_size = [int(v) for v in self.meta["input_size"]]
        self.class_names = list(self.meta.get("class_names") or [])
        self.preprocess = Preprocessor(self.meta["preprocess"], self.input_size[0])
        legacy_trt = opts.use_tensorrt and not model_file.endswith(".json")
        if opts.use_tensorrt and not legacy_trt:
            prefix = _tensorrt_model(model_file, model_dir, opts, self.input_size)
            config = inference.Config(prefix + ".json", prefix + ".pdiparams")
        else:
            config = inference.Config(model_file, params)
        with native_output_silenced(not opts.verbose):
            for name, args in config_calls(opts, self.input_size, legacy_trt):
                getattr(config, name)(*args)
            self.config = config
            self.predictor = inference.create_predictor(config)
            self.input_name = self.predictor.get_input_names()[0]
            self.output_name = self.predictor.get_output_names()[0]
            self._check_model()

    def _check_model(self) -> None:
        """Run one zero image: a sidecar that does not match the model fails here, not on the first real image."""
        try:
            out = self.run(np.zeros([1, *self.input_size], np.float32))
        except Exception as e:
            raise PredictorError(f"the model does not accept the input size {self.input_size} from inference.yml "
                                 f"({str(e).splitlines()[0][:200]}): re-export the model") from None
        if self.class_names and out.shape[-1] != len(self.class_names):
            raise PredictorError(f"inference.yml lists {len(self.class_names)} classes but the model has "
                                 f"{out.shape[-1]} outputs: re-export the model")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits for a preprocessed float32 batch [N, C, H, W]."""
        handle = self.predictor.get_input_handle(self.input_name)
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(np.ascontiguousarray(batch, dtype=np.float32))
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        logits = self.run(batch).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict_paths(self, paths: Sequence[str], topk: int = 5) -> Iterator[Dict[str, Any]]:
        """For each path, in order: ``{"path", "topk": [{"class_id", "label", "score"}...]}``, or
        ``{"path", "error"}`` for a file that cannot be read."""
        bs = self.options.batch_size
        pending: List[Tuple[str, np.ndarray]] = []
        for path in paths:
            img = read_image(path) if os.path.isfile(path) else None
            if img is None:
                yield from self._flush(pending, topk)
                pending = []
                why = "not found" if not os.path.exists(path) else \
                    "empty file" if os.path.getsize(path) == 0 else "not a readable image (corrupt or unsupported)"
                yield {"path": path, "error": why}
                continue
            pending.append((path, self.preprocess(img)))
            if len(pending) == bs:
                yield from self._flush(pending, topk)
                pending = []
        yield from self._flush(pending, topk)

    def _flush(self, pending: List[Tuple[str, np.ndarray]], topk: int) -> Iterator[Dict[str, Any]]:
        if not pending:
            return
        probs = self.probabilities(np.stack([x for _, x in pending]))
        k = min(topk, probs.shape[1])
        for (path, _), p in zip(pending, probs):
            ids = np.argsort(-p)[:k]
            yield {"path": path, "topk": [{"class_id": int(i), "label": self.label(int(i)), "score": float(p[i])}
                                          for i in ids]}

    def label(self, class_id: int) -> str:
        return self.class_names[class_id] if class_id < len(self.class_names) else str(class_id)


def expand_inputs(inputs: Iterable[str]) -> List[str]:
    """Files, directories (recursively, by image extension) and globs -> a sorted list of paths per input."""
    paths: List[str] = []
    for item in inputs:
        if os.path.isdir(item):
            found = [os.path.join(d, f) for d, _, files in os.walk(item) for f in files
                     if f.lower().endswith(IMG_EXTENSIONS)]
            paths += sorted(found)
        elif any(ch in item for ch in "*?[") and not os.path.exists(item):
            paths += sorted(glob.glob(item, recursive=True))
        else:
            paths.append(item)
    return paths


def precision_agreement(model_dir: str, paths: Sequence[str], precision: str = "bf16", threads: int = 2,
                        batch_size: int = 16) -> Dict[str, Any]:
    """Top-1 agreement of a reduced-precision predictor with float32 on real images (measure before advertising)."""
    device = "gpu" if precision == "fp16" else "cpu"
    ref = Predictor(model_dir, PredictorOptions(device=device, cpu_threads=threads, batch_size=batch_size))
    low = Predictor(model_dir, PredictorOptions(device=device, cpu_threads=threads, batch_size=batch_size,
                                                precision=precision))
    a = [r for r in ref.predict_paths(paths, topk=1) if "topk" in r]
    b = [r for r in low.predict_paths(paths, topk=1) if "topk" in r]
    same = sum(x["topk"][0]["class_id"] == y["topk"][0]["class_id"] for x, y in zip(a, b))
    diff = max((abs(x["topk"][0]["score"] - y["topk"][0]["score"]) for x, y in zip(a, b)), default=0.0)
    return {"images": len(a), "top1_agreement": same / max(len(a), 1), "disagreements": len(a) - same,
            "max_prob_diff": diff}
