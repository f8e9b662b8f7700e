"""Dygraph -> Paddle Inference: ``inference.json`` + ``inference.pdiparams`` (Paddle 3, PIR) with a dynamic batch,
BatchNorms folded (``fold.py``), and ``inference.yml``: what a predictor needs (input size, preprocessing, class
names, the model's ``default_cfg``).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn
import yaml

from ..builder import build_model_from_config
from ..data import class_names, eval_transforms
from ..errors import ExportError
from ..model_cfg import ModelCfg
from ..registry import create_model
from .fold import fold_batchnorm, remaining_batchnorms


def _floats(value: Any) -> List[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]


def preprocessing_from_transforms(spec: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The eval transforms as predictor steps (resize, center_crop, to_float, normalize); others cannot be exported."""
    steps: List[Dict[str, Any]] = []
    for item in spec:
        (name, args), = item.items()
        args = args or {}
        if name == "Resize":
            interp = args.get("interpolation", "bilinear")
            steps.append({"resize": {"size": args["size"], "interpolation": interp}})
        elif name == "CenterCrop":
            steps.append({"center_crop": {"size": args["size"]}})
        elif name == "ToTensor":
            steps.append({"to_float": {"divisor": 255.0}})
        elif name == "Normalize":
            steps.append({"normalize": {"mean": _floats(args.get("mean", 0.0)), "std": _floats(args.get("std", 1.0))}})
        else:
            raise ExportError(f"the eval transform '{name}' cannot be reproduced by the predictor; use Resize, "
                             "CenterCrop, ToTensor and Normalize in Data.Eval.transforms")
    return steps


def preprocessing_from_cfg(cfg: ModelCfg, size: Optional[int] = None) -> List[Dict[str, Any]]:
    """The model's own eval preprocessing (``default_cfg``: resize, centre crop, mean/std) as predictor steps."""
    size = int(size or cfg.input_size[1])
    return [{"resize": {"size": cfg.eval_resize(size), "interpolation": cfg.interpolation}},
            {"center_crop": {"size": size}}, {"to_float": {"divisor": 255.0}},
            {"normalize": {"mean": [float(v) for v in cfg.mean], "std": [float(v) for v in cfg.std]}}]


def export_model(net: nn.Layer, out_dir: str, input_size: Sequence[int], meta: Dict[str, Any],
                 fold: bool = True) -> Dict[str, str]:
    """Save ``net`` for Paddle Inference into ``out_dir`` (``inference.json``/``.pdiparams``/``.yml``).

    Args:
        net: the dygraph model (its weights loaded).
        out_dir: folder to write.
        input_size: (C, H, W) the model is exported for; the batch stays dynamic.
        meta: sidecar fields (preprocess, class_names, model, variant...), written to ``inference.yml``.
        fold: fold BatchNorms first (``fold_batchnorm``).
    Returns:
        The paths written.
    """
    from paddle.static import InputSpec
    net.eval()
    model = fold_batchnorm(net) if fold else net
    os.makedirs(out_dir, exist_ok=True)
    prefix = os.path.join(out_dir, "inference")
    c, h, w = (int(v) for v in input_size)
    paddle.jit.save(model, prefix, input_spec=[InputSpec([None, c, h, w], "float32", "x")])
    cfg = net.default_cfg
    sidecar = {
        "model": cfg.name,
        "variant": {k: v for k, v in cfg.variant.items() if v is not None},
        "num_classes": int(net.num_classes),
        **meta,
        "input_size": [c, h, w],
        "stride": cfg.stride,
        "channel_order": "RGB" if c == 3 else "GREY",
        "folded_batchnorms": len(getattr(model, "folded_bn", [])),
        "remaining_batchnorms": len(remaining_batchnorms(model)),
        "paddle_version": paddle.__version__,
    }
    with open(prefix + ".yml", "w", encoding="utf-8") as f:
        yaml.safe_dump(sidecar, f, sort_keys=False, default_flow_style=None, allow_unicode=True)
    files = {k: prefix + ext for k, ext in (("model", ".json"), ("params", ".pdiparams"), ("sidecar", ".yml"))}
    missing = [p for p in files.values() if not os.path.isfile(p)]
    if missing:  # Paddle 3 with FLAGS_enable_pir_api=0 writes the legacy .pdmodel
        files["model"] = prefix + ".pdmodel"
    return files


def read_labels(path: Optional[str]) -> List[str]:
    if not path or not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def export_from_config(cfg: Dict[str, Any], weights: Optional[str] = None, out_dir: Optional[str] = None,
                       fold: Optional[bool] = None, check: bool = True) -> Dict[str, Any]:
    """Export the model of ``cfg`` (with ``weights``, or random weights when None) and check it against dygraph.

    The model is built as training built it (``build_model_from_config``): weights of another model or variant are
    refused. The output folder is ``--out``, else ``Export.output_dir``, else ``<run>/inference`` beside the
    checkpoints. Class names come from ``Infer.label_file`` or the run's ``labels.txt``. Returns the files and the
    check's maximum absolute difference.
    """
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(weights))) if weights else None
    labels = read_labels(cfg["Infer"]["label_file"]) or read_labels(run_dir and os.path.join(run_dir, "labels.txt"))
    if weights:
        net = build_model_from_config(cfg, weights=weights)
    else:
        labels = labels or class_names(cfg["Data"])
        net = build_model_from_config(cfg, num_classes=len(labels))
    if labels and len(labels) != net.num_classes:
        raise ExportError(f"{len(labels)} class names for a model with {net.num_classes} classes: fix "
                          "Infer.label_file")
    name = cfg["Model"]["name"]
    size = cfg["Export"]["image_size"] or cfg["Data"]["image_size"]
    input_size = (cfg["Data"]["channels"], size, size)
    out_dir = out_dir or cfg["Export"]["output_dir"] or (os.path.join(run_dir, "inference") if run_dir else
                                                         os.path.join(cfg["Global"]["output_dir"], f"{name}_inference"))
    fold = cfg["Export"]["fold_bn"] if fold is None else fold
    meta = {
        "class_names": labels or [str(i) for i in range(net.num_classes)],
        "preprocess": preprocessing_from_transforms(eval_transforms(cfg["Data"])),
        "weights": os.path.abspath(weights) if weights else "random (no --weights)",
    }
    files = export_model(net, out_dir, input_size, meta, fold=fold)
    result: Dict[str, Any] = {"files": files, "out_dir": out_dir}
    if check:
        from ..inference import Predictor, PredictorOptions
        x = np.random.RandomState(0).standard_normal([2, *input_size]).astype(np.float32)
        with paddle.no_grad():
            ref = net(paddle.to_tensor(x)).numpy()
        got = Predictor(out_dir, PredictorOptions(cpu_threads=2)).run(x)
        diff = float(np.abs(got - ref).max())
        result["max_abs_diff"] = diff
        if diff > 1e-4 * max(1.0, float(np.abs(ref).max())):
            raise RuntimeError(f"the exported model differs from the dygraph model by {diff:.3g}: please report this")
    return result


def export_registered(name: str, out_dir: str, fold: bool = True, image_size: Optional[int] = None,
                      **model_kwargs: Any) -> Dict[str, str]:
    """Export a registered model with random weights at its default input size (for benchmarks and smoke tests),
    with the model's own eval preprocessing (``default_cfg``)."""
    net = create_model(name, **model_kwargs)
    cfg = net.default_cfg
    size = image_size or cfg.input_size[1]
    meta = {"class_names": [str(i) for i in range(net.num_classes)], "preprocess": preprocessing_from_cfg(cfg, size),
            "weights": "random (registry name)"}
    return export_model(net, out_dir, (cfg.in_chans, size, size), meta, fold=fold)
