"""Classify images with an exported model: preprocessing from ``inference.yml``, then a backend from the table
(``backends.BACKENDS``: Paddle Inference, ONNX Runtime, OpenVINO), with the same output and the same error handling.

Nothing a user hands in stops a run: a missing, empty, truncated or undecodable file, a batch that fails (its images
are retried one by one) or an image whose scores come out non-finite is reported on its own and the rest go on.
"""
from __future__ import annotations

import glob
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PredictorError, first_line
from ..image import file_problem, list_images, read_image
from ..labels import read_labels
from ..model_cfg import ModelCfg
from ..native_output import native_output_redirected
from . import backends, model_folder
from .options import PredictorOptions
from .preprocess import Preprocessor


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
        backends.check_options(opts)
        if not model_folder.has_model(model_dir):
            raise PredictorError(f"no exported model in '{model_dir}' (expected inference.yml with inference.json + "
                                 "inference.pdiparams and/or inference.onnx): create one with tools/export.py")
        self.meta = model_folder.read_sidecar(model_dir)
        self.options = opts = self._concrete_precision(opts, model_dir)
        self.input_size = [int(v) for v in self.meta["input_size"]]
        self.cfg = ModelCfg(str(self.meta.get("model", "")), "", tuple(self.input_size),
                            stride=int(self.meta.get("stride", 1)),
                            fixed_input_size=bool(self.meta.get("fixed_input_size", True)))
        if opts.labels:
            self.class_names = read_labels(opts.labels)
        else:
            model_folder.check_label_sources(model_dir, self.meta)
            self.class_names = [str(n) for n in self.meta.get("class_names") or []]
        self.preprocess = Preprocessor(self.meta["preprocess"], self.input_size[0])
        self._check_preprocessing()
        backend = backends.resolve(opts, model_dir)
        model_folder.check_digest(model_dir, self.meta, (f for f in backend.model_files(model_dir, opts.precision)
                                                         if f))
        self.backend_name = backend.name
        self.backend = backend(model_dir, opts, self.input_size)
        self._check_model()

    def _concrete_precision(self, opts: PredictorOptions, model_dir: str) -> PredictorOptions:
        """``precision`` ``auto`` made concrete (``backends.choose_precision``); ``precision_reason`` says why."""
        opts, self.precision_reason = backends.choose_precision(opts, self.meta, model_dir)
        self.precision = opts.precision
        return opts

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
        except PredictorError:
            raise
        except self.backend.errors as e:
            raise PredictorError(f"the model does not accept the input size {self.input_size} from inference.yml "
                                 f"({first_line(e)}): re-export the model") from None
        if self.class_names and out.shape[-1] != len(self.class_names):
            if self.options.labels:
                raise PredictorError(f"the label file '{self.options.labels}' has {len(self.class_names)} names but "
                                     f"the model has {out.shape[-1]} classes: give one name per class")
            raise PredictorError(f"inference.yml lists {len(self.class_names)} classes but the model has "
                                 f"{out.shape[-1]} outputs: re-export the model")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The class probabilities for a preprocessed batch [N, C, H, W] (cast to float32); another shape is a
        one-line error."""
        batch = np.asarray(batch)
        c = self.input_size[0]
        if batch.ndim != 4 or batch.shape[1] != c:
            raise PredictorError(f"the model takes a batch [N, {c}, H, W], got shape {list(batch.shape)}")
        why = self.cfg.check_size(batch.shape[2], batch.shape[3])
        if why:
            raise PredictorError(f"a {batch.shape[2]}x{batch.shape[3]} input does not fit: {why}")
        return self.backend.run(np.ascontiguousarray(batch, dtype=np.float32))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return self.run(batch)

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

    def _outputs(self, pending: List[Tuple[str, np.ndarray]]) -> List[Any]:
        """Probabilities per image, or the message of an image whose run failed in the backend's library (a failed
        batch is retried one by one). Our own errors (``PredictorError``) and bugs are not caught."""
        try:
            return list(self.run(np.stack([x for _, x in pending])))
        except PredictorError:
            raise
        except self.backend.errors as e:
            if len(pending) == 1:
                return [first_line(e)]
        out: List[Any] = []
        for item in pending:
            out += self._outputs([item])
        return out

    def _flush(self, pending: List[Tuple[str, np.ndarray]], topk: int) -> Iterator[Dict[str, Any]]:
        if not pending:
            return
        for (path, _), p in zip(pending, self._outputs(pending)):
            if isinstance(p, str):
                yield {"path": path, "error": f"the model failed on this image: {p}"}
                continue
            if not np.isfinite(p).all():
                yield {"path": path, "error": "the model produced non-finite scores (NaN or inf) for this image: "
                                              "its weights are damaged; re-export from a good checkpoint"}
                continue
            p = p.astype(np.float32)
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
    """Top-1 agreement of a reduced-precision predictor with float32 on the same backend (``auto`` resolves to the
    backend that runs ``precision``, and that backend runs the float32 reference), on real images."""
    on_cpu = any(b.runs("cpu", precision) for b in backends.candidates(backend, "cpu"))
    device = "cpu" if on_cpu else "gpu"  # fp16: GPU, or a mobile runtime
    low = Predictor(model_dir, PredictorOptions(device=device, cpu_threads=threads, batch_size=batch_size,
                                                precision=precision, backend=backend))
    ref = Predictor(model_dir, PredictorOptions(device=device, cpu_threads=threads, batch_size=batch_size,
                                                backend=low.backend_name))
    a = {r["path"]: r["topk"][0] for r in ref.predict_paths(paths, topk=1) if "topk" in r}
    b = {r["path"]: r["topk"][0] for r in low.predict_paths(paths, topk=1) if "topk" in r}
    both = [k for k in a if k in b]
    same = sum(a[k]["class_id"] == b[k]["class_id"] for k in both)
    diff = max((abs(a[k]["score"] - b[k]["score"]) for k in both), default=0.0)
    return {"images": len(both), "backend": low.backend_name, "top1_agreement": same / max(len(both), 1),
            "disagreements": len(both) - same, "max_prob_diff": diff}
