"""Classify images with an exported model: preprocessing from ``inference.yml``, then a backend -- Paddle Inference
(``paddle_backend``) or ONNX Runtime (``onnx_backend``) -- with the same output and the same error handling.

Nothing a user hands in stops a run: a missing, empty, truncated or undecodable file, a batch that fails (its images
are retried one by one) or an image whose scores come out non-finite is reported on its own and the rest go on.
"""
from __future__ import annotations

import glob
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from ..errors import PredictorError
from ..image import file_problem, list_images, read_image
from ..labels import read_labels
from ..model_cfg import ModelCfg
from ..native_output import native_output_redirected
from .onnx_backend import OnnxRuntimeBackend, onnx_file, onnxruntime_available
from .openvino_backend import OpenVinoBackend, openvino_available
from .options import PredictorOptions, check_options
from .paddle_backend import PaddleBackend
from .preprocess import Preprocessor

BACKEND_CLASSES = {"paddle": PaddleBackend, "onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend}


def load_sidecar(model_dir: str) -> Dict[str, Any]:
    """``inference.yml``: preprocessing, input size, class names; a missing or damaged one is a one-line error."""
    path = os.path.join(model_dir, "inference.yml")
    if not os.path.isfile(path):
        raise PredictorError(f"'{path}' is missing: it holds the preprocessing and labels; re-export with "
                             "tools/export.py")
    try:
        with open(path, encoding="utf-8") as f:
            meta = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise PredictorError(f"'{path}' is not valid YAML ({str(e).splitlines()[0][:120]}): re-export the model "
                             "with tools/export.py") from None
    if not isinstance(meta, dict):
        raise PredictorError(f"'{path}' is not an inference.yml (no mapping of keys): re-export the model with "
                             "tools/export.py")
    for key in ("input_size", "preprocess"):
        if key not in meta:
            raise PredictorError(f"'{path}' has no '{key}': re-export the model with tools/export.py")
    size = meta["input_size"]
    if not (isinstance(size, list) and len(size) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                              and v > 0 for v in size)):
        raise PredictorError(f"'{path}': input_size must be [channels, height, width] (positive integers), got "
                             f"{str(size)[:60]!s}; re-export the model with tools/export.py")
    for key, kind in (("preprocess", list), ("class_names", list), ("stride", int)):
        if key in meta and not isinstance(meta[key], kind):
            raise PredictorError(f"'{path}': {key} must be a {kind.__name__}, got {type(meta[key]).__name__}; "
                                 "re-export the model with tools/export.py")
    return meta


def resolve_backend(opts: PredictorOptions, model_dir: str) -> str:
    """``opts.backend``, or for ``auto`` the fastest one installed for the device and precision, as measured (README
    "Deploy"): on CPU, where the model folder has the ONNX file (fp32 or int8), OpenVINO (as fast as ONNX Runtime or
    faster for every variant at batch 1 and 8 in every run: fp32 1.00-1.51x, int8 1.55-2.1x), ONNX Runtime where
    OpenVINO is not installed or ``ort_spin`` asks for it; Paddle Inference for bf16, which only Paddle's oneDNN runs,
    on GPU, and where there is no ONNX file."""
    if opts.backend != "auto":
        return opts.backend
    if opts.device == "cpu" and opts.precision in ("fp32", "int8") and os.path.isfile(onnx_file(model_dir,
                                                                                                opts.precision)):
        if not opts.ort_spin and openvino_available():
            return "openvino"
        if onnxruntime_available():
            return "onnxruntime"
    if opts.precision == "int8":
        raise PredictorError(f"no '{onnx_file(model_dir, 'int8')}': export with tools/export.py --int8 (and install "
                             "openvino or onnxruntime)")
    return "paddle"


class Predictor:
    """Load ``model_dir`` (from ``tools/export.py``) and classify images.

    Example:
        >>> p = Predictor("output/run/inference", PredictorOptions(cpu_threads=2))
        >>> for result in p.predict_paths(["a.jpg", "b.png"], topk=5): print(result)
    """

    def __init__(self, model_dir: str, options: Optional[PredictorOptions] = None):
        self.options = opts = options or PredictorOptions()
        if not os.path.isdir(model_dir):
            raise PredictorError(f"model folder '{model_dir}' not found: give the folder tools/export.py wrote")
        check_options(opts)
        if not any(f.startswith("inference.") for f in os.listdir(model_dir)):
            raise PredictorError(f"no exported model in '{model_dir}' (expected inference.yml with inference.json + "
                                 "inference.pdiparams and/or inference.onnx): create one with tools/export.py")
        self.meta = load_sidecar(model_dir)
        self.input_size = [int(v) for v in self.meta["input_size"]]
        # what the exported program accepts: sidecars older than the stride entry held a fixed size
        self.cfg = ModelCfg(str(self.meta.get("model", "")), "", tuple(self.input_size),
                            stride=int(self.meta.get("stride", 1)),
                            fixed_input_size=bool(self.meta.get("fixed_input_size", "stride" not in self.meta)))
        self.class_names = read_labels(opts.labels) if opts.labels else list(self.meta.get("class_names") or [])
        self.preprocess = Preprocessor(self.meta["preprocess"], self.input_size[0])
        self._check_preprocessing()
        self.backend_name = resolve_backend(opts, model_dir)
        self.backend = BACKEND_CLASSES[self.backend_name](model_dir, opts, self.input_size)
        self._check_model()

    def _check_preprocessing(self) -> None:
        """Any photo must end at the exported size; an old or hand-edited inference.yml that does not is refused."""
        c, h, w = self.input_size
        got = self.preprocess(np.zeros([257, 311, 3], np.uint8)).shape
        if tuple(got) != (c, h, w):
            raise PredictorError(f"inference.yml's preprocessing turns a 311x257 photo into a "
                                 f"{'x'.join(map(str, got))} array, not the model's input {c}x{h}x{w}: re-export the "
                                 "model with tools/export.py")

    def _check_model(self) -> None:
        """Run one zero image: a sidecar that does not match the model fails here, not on the first real image."""
        try:
            with native_output_redirected(not self.options.verbose):  # oneDNN names its passes on the first run
                out = self.backend.run(np.zeros([1, *self.input_size], np.float32))
        except self.backend.errors as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise PredictorError(f"the model does not accept the input size {self.input_size} from inference.yml "
                                 f"({first}): re-export the model") from None
        if self.class_names and out.shape[-1] != len(self.class_names):
            if self.options.labels:
                raise PredictorError(f"the label file '{self.options.labels}' has {len(self.class_names)} names but "
                                     f"the model has {out.shape[-1]} classes: give one name per class")
            raise PredictorError(f"inference.yml lists {len(self.class_names)} classes but the model has "
                                 f"{out.shape[-1]} outputs: re-export the model")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The program's outputs for a preprocessed batch [N, C, H, W] (cast to float32): probabilities
        (``output: probabilities`` in inference.yml), or logits from an export older than that field. Another shape is
        a one-line error."""
        batch = np.asarray(batch)
        c = self.input_size[0]
        if batch.ndim != 4 or batch.shape[1] != c:
            raise PredictorError(f"the model takes a batch [N, {c}, H, W], got shape {list(batch.shape)}")
        why = self.cfg.check_size(batch.shape[2], batch.shape[3])
        if why:
            raise PredictorError(f"a {batch.shape[2]}x{batch.shape[3]} input does not fit: {why}")
        return self.backend.run(np.ascontiguousarray(batch, dtype=np.float32))

    @staticmethod
    def softmax(logits: np.ndarray) -> np.ndarray:
        logits = logits.astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    @property
    def outputs_probabilities(self) -> bool:
        return self.meta.get("output") == "probabilities"

    def as_probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """The program's outputs [N, classes] as probabilities (a softmax for an export that outputs logits)."""
        return outputs.astype(np.float32) if self.outputs_probabilities else self.softmax(outputs)

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.as_probabilities(self.run(batch))

    def predict_paths(self, paths: Sequence[str], topk: int = 5) -> Iterator[Dict[str, Any]]:
        """For each path, in order: ``{"path", "topk": [{"class_id", "label", "score"}...]}``, or
        ``{"path", "error"}`` for a file that cannot be read or classified."""
        if int(topk) < 1:
            raise PredictorError(f"topk {topk}: ask for at least 1 class per image")
        bs = self.options.batch_size
        pending: List[Tuple[str, np.ndarray]] = []
        for path in paths:
            why = file_problem(path)
            img = read_image(path) if why is None else None
            if img is None:
                yield from self._flush(pending, topk)
                pending = []
                yield {"path": path, "error": why or "not a readable image (corrupt or unsupported)"}
                continue
            pending.append((path, self.preprocess(img)))
            if len(pending) == bs:
                yield from self._flush(pending, topk)
                pending = []
        yield from self._flush(pending, topk)

    def _logits(self, pending: List[Tuple[str, np.ndarray]]) -> List[Any]:
        """Logits per image, or the error of an image whose run failed (a failed batch is retried one by one)."""
        try:
            return list(self.run(np.stack([x for _, x in pending])))
        except self.backend.errors:
            if len(pending) == 1:
                raise
        out: List[Any] = []
        for item in pending:
            try:
                out += self._logits([item])
            except self.backend.errors as e:  # reported for this image; the others go on
                out.append(PredictorError(str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e)))
        return out

    def _flush(self, pending: List[Tuple[str, np.ndarray]], topk: int) -> Iterator[Dict[str, Any]]:
        if not pending:
            return
        try:
            results = self._logits(pending)
        except self.backend.errors as e:
            results = [PredictorError(str(e).strip().splitlines()[0][:200])]
        for (path, _), logits in zip(pending, results):
            if isinstance(logits, Exception):
                yield {"path": path, "error": f"the model failed on this image: {logits}"}
                continue
            if not np.isfinite(logits).all():
                yield {"path": path, "error": "the model produced non-finite scores (NaN or inf) for this image: "
                                              "its weights are damaged; re-export from a good checkpoint"}
                continue
            p = self.as_probabilities(logits[None])[0]
            ids = np.argsort(-p)[: min(topk, p.shape[0])]
            yield {"path": path, "topk": [{"class_id": int(i), "label": self.label(int(i)), "score": float(p[i])}
                                          for i in ids]}

    def label(self, class_id: int) -> str:
        return self.class_names[class_id] if class_id < len(self.class_names) else str(class_id)


def expand_inputs(inputs: Iterable[str]) -> List[str]:
    """Files, directories (recursively, by image extension) and globs -> a sorted list of paths per input."""
    paths: List[str] = []
    for item in inputs:
        if os.path.isdir(item):
            try:
                paths += list_images(item)
            except OSError as e:
                raise PredictorError(f"cannot list '{e.filename or item}' ({e.strerror or e}): make it readable, or "
                                     "name the images instead") from None
        elif any(ch in item for ch in "*?[") and not os.path.exists(item):
            paths += sorted(glob.glob(item, recursive=True))
        else:
            paths.append(item)
    return paths


def precision_agreement(model_dir: str, paths: Sequence[str], precision: str = "bf16", threads: int = 2,
                        batch_size: int = 16, backend: str = "auto") -> Dict[str, Any]:
    """Top-1 agreement of a reduced-precision predictor with float32 on the same backend family, on real images
    (measure before advertising)."""
    device = "gpu" if precision == "fp16" else "cpu"
    ref_backend = "onnxruntime" if precision == "int8" else "paddle" if precision == "bf16" else backend
    ref = Predictor(model_dir, PredictorOptions(device=device, cpu_threads=threads, batch_size=batch_size,
                                                backend=ref_backend))
    low = Predictor(model_dir, PredictorOptions(device=device, cpu_threads=threads, batch_size=batch_size,
                                                precision=precision, backend=backend))
    a = [r for r in ref.predict_paths(paths, topk=1) if "topk" in r]
    b = [r for r in low.predict_paths(paths, topk=1) if "topk" in r]
    same = sum(x["topk"][0]["class_id"] == y["topk"][0]["class_id"] for x, y in zip(a, b))
    diff = max((abs(x["topk"][0]["score"] - y["topk"][0]["score"]) for x, y in zip(a, b)), default=0.0)
    return {"images": len(a), "top1_agreement": same / max(len(a), 1), "disagreements": len(a) - same,
            "max_prob_diff": diff}
