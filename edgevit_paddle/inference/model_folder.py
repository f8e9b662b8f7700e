"""The model folder ``tools/export.py`` writes: the one owner of its file names and of reading ``inference.yml``.

Export, every backend, the predictor and fine-tuning's reader name the files through this module::

    inference.json + inference.pdiparams   Paddle Inference (PIR; a legacy inference.pdmodel is read too)
    inference.onnx, inference_int8.onnx    ONNX fp32 and INT8 (QDQ), read by ONNX Runtime and OpenVINO
    inference.mnn, inference_int8.mnn      MNN (converted from the ONNX file; INT8 by mnnquant)
    inference.ncnn.param + .ncnn.bin       ncnn (converted from the ONNX file by pnnx, at the exported size)
    inference.yml                          preprocessing, input size, class names, PaddleClas/PaddleX sections,
                                           and a digest of each model file (checked at load)
    label_list.txt                         PaddleClas's label map (``<id> <name>`` per line)
    .cache/                                what a backend converts once (TensorRT engines)

Only these names are the export's: anything else in a folder is the user's (an export refuses to replace it).
"""
from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, Iterable, List, Optional

import yaml

from ..errors import PredictorError, first_line
from ..labels import parse_label_map

PREFIX = "inference"
#: role -> file name; a backend declares which roles it reads (``Backend.files``)
FILES = {
    "paddle_program": "inference.json",
    "paddle_legacy_program": "inference.pdmodel",
    "paddle_params": "inference.pdiparams",
    "onnx": "inference.onnx",
    "onnx_int8": "inference_int8.onnx",
    "mnn": "inference.mnn",
    "mnn_int8": "inference_int8.mnn",
    "ncnn_param": "inference.ncnn.param",
    "ncnn_bin": "inference.ncnn.bin",
    "sidecar": "inference.yml",
    "labels": "label_list.txt",
}
#: a folder a backend writes what it converts once (never checked, never user's)
CACHE = ".cache"
#: the model files whose digest ``inference.yml`` records (``digests``)
MODEL_ROLES = ("paddle_program", "paddle_legacy_program", "paddle_params", "onnx", "onnx_int8", "mnn", "mnn_int8",
               "ncnn_param", "ncnn_bin")


def path(model_dir: str, role: str) -> str:
    return os.path.join(model_dir, FILES[role])


def ours(name: str) -> bool:
    """Whether a file name in a model folder is one an export writes."""
    return name in FILES.values() or name == CACHE


def foreign_files(model_dir: str) -> List[str]:
    """The files in ``model_dir`` that no export writes (the user's)."""
    return sorted(f for f in os.listdir(model_dir) if not ours(f))


def has_model(model_dir: str) -> bool:
    """Whether ``model_dir`` holds any model file of an export."""
    return any(os.path.isfile(path(model_dir, role)) for role in MODEL_ROLES)


def digest(file: str) -> str:
    """``sha256:<hex>`` of a file (hashed in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def digests(model_dir: str) -> Dict[str, str]:
    """File name -> digest for every model file present (what export records in ``inference.yml``)."""
    return {FILES[r]: digest(path(model_dir, r)) for r in MODEL_ROLES if os.path.isfile(path(model_dir, r))}


def check_digest(model_dir: str, meta: Dict[str, Any], files: Iterable[str]) -> None:
    """Refuse a model file whose content is not the one ``inference.yml`` was written with (a file swapped in from
    another export). Files the sidecar records no digest for are not checked."""
    recorded = meta.get("digests") or {}
    for file in files:
        name = os.path.basename(file)
        want = recorded.get(name) if isinstance(recorded, dict) else None
        if want and os.path.isfile(file) and digest(file) != want:
            raise PredictorError(f"'{file}' is not the file this export wrote (its content differs from the digest "
                                 "inference.yml records): it is damaged or from another export; re-export the model, "
                                 "or copy the whole folder it came from")


def read_sidecar(model_dir: str) -> Dict[str, Any]:
    """``inference.yml``: preprocessing, input size, class names; a missing, damaged or self-contradicting one is a
    one-line error."""
    file = path(model_dir, "sidecar")
    if not os.path.isfile(file):
        raise PredictorError(f"'{file}' is missing: it holds the preprocessing and labels; re-export with "
                             "tools/export.py")
    try:
        with open(file, encoding="utf-8") as f:
            meta = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise PredictorError(f"'{file}' is not valid YAML ({first_line(e, 120)}): re-export the model with "
                             "tools/export.py") from None
    if not isinstance(meta, dict):
        raise PredictorError(f"'{file}' is not an inference.yml (no mapping of keys): re-export the model with "
                             "tools/export.py")
    for key in ("input_size", "preprocess"):
        if key not in meta:
            raise PredictorError(f"'{file}' has no '{key}': re-export the model with tools/export.py")
    size = meta["input_size"]
    if not (isinstance(size, list) and len(size) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                              and v > 0 for v in size)):
        raise PredictorError(f"'{file}': input_size must be [channels, height, width] (positive integers), got "
                             f"{str(size)[:60]!s}; re-export the model with tools/export.py")
    for key, kind in (("preprocess", list), ("class_names", list), ("stride", int), ("digests", dict)):
        if key in meta and not isinstance(meta[key], kind):
            raise PredictorError(f"'{file}': {key} must be a {kind.__name__}, got {type(meta[key]).__name__}; "
                                 "re-export the model with tools/export.py")
    return meta


def check_label_sources(model_dir: str, meta: Dict[str, Any]) -> None:
    """``class_names``, ``label_list.txt`` and PaddleClas's ``PostProcess.Topk.label_list`` are three views of one
    list: a folder where they disagree (one of them edited) is refused, since our tools and PaddleClas would print
    different names."""
    names = [str(n) for n in meta.get("class_names") or []]
    if not names:
        return
    theirs = (((meta.get("PostProcess") or {}).get("Topk") or {}).get("label_list")
              if isinstance(meta.get("PostProcess"), dict) else None)
    sources = {"PostProcess.Topk.label_list in inference.yml": [str(n) for n in theirs] if theirs else None}
    labels_file = path(model_dir, "labels")
    if os.path.isfile(labels_file):
        try:
            with open(labels_file, encoding="utf-8") as f:
                sources[FILES["labels"]] = parse_label_map(f.read())
        except (UnicodeDecodeError, ValueError) as e:
            raise PredictorError(f"'{labels_file}' is not a label map ({first_line(e, 120)}): re-export the model "
                                 "with tools/export.py") from None
    for where, other in sources.items():
        if other is not None and other != names:
            i = next((i for i, (a, b) in enumerate(zip(names, other)) if a != b), min(len(names), len(other)))
            got = other[i] if i < len(other) else "nothing"
            want = names[i] if i < len(names) else "nothing"
            raise PredictorError(f"{where} disagrees with class_names in inference.yml (class {i}: '{got}' vs "
                                 f"'{want}'): the folder's label lists were edited apart; re-export the model, or "
                                 "give --labels FILE")


def recorded_weights(model_dir: str) -> Optional[str]:
    """The checkpoint an export was made from (``weights`` in its ``inference.yml``), or None."""
    file = path(model_dir, "sidecar")
    try:
        with open(file, encoding="utf-8") as f:
            meta = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError, OSError):
        return None
    source = meta.get("weights") if isinstance(meta, dict) else None
    return source if isinstance(source, str) else None
