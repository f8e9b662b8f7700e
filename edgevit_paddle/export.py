"""Dygraph -> Paddle Inference export, with BatchNorm folding.

``fold_batchnorm(model)`` returns an eval-mode copy in which every BatchNorm that sits directly next to a conv or
Linear layer (with nothing non-linear in between) is folded into that layer's weights and replaced by Identity:

- EdgeViT, every variant: LocalAgg's two BatchNorms into the following 1x1 convs (``conv1``, ``mlp.fc1``), the final
  BatchNorm into the head (average pooling commutes with a per-channel affine map);
- ``norm="bn"`` EdgeViT: the patch-embedding norms into the patch convs, SelfAttn's pre-norms into ``qkv`` (the
  sampler only slices positions) and into ``mlp.fc1``, LocalProp's norm into the output projection;
- ViTBN: the patch-embedding norm into the patch conv, the pre-norms into ``qkv``/``mlp.fc1``, the final norm into
  the head; ViTBNFFN: the FFN's BatchNorm into ``fc1`` before it.

GroupNorm and LayerNorm cannot be folded: they normalise with statistics of each input, not with constants.

``export_model`` writes ``inference.json`` + ``inference.pdiparams`` (Paddle 3, PIR) with a dynamic batch, and
``inference.yml``: what a predictor needs (input size, preprocessing, class names, model and variant).
"""
from __future__ import annotations

import copy
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import yaml

_BN = nn.layer.norm._BatchNormBase

# (parent attribute path of the BatchNorm, path of the layer it folds into, "in": BN feeds that layer's input,
#  "out": BN normalises that layer's output), by the class name of the block that owns both.
_FOLD_RULES: Dict[str, List[Tuple[str, str, str]]] = {
    "LocalAgg": [("norm1", "conv1", "in"), ("norm2", "mlp.fc1", "in")],
    "SelfAttn": [("norm1", "attn.qkv", "in"), ("norm2", "mlp.fc1", "in")],
    "GlobalSparseAttn": [("norm", "proj", "in")],
    "PatchEmbed": [("norm", "proj", "out")],
    "Block": [("norm1", "attn.qkv", "in"), ("norm2", "mlp.fc1", "in")],
    "Mlp": [("norm", "fc1", "out")],
    "EdgeViT": [("norm", "head", "in")],
    "VisionTransformer": [("norm", "head", "in")],
}


def _get(layer: nn.Layer, path: str) -> Optional[nn.Layer]:
    for part in path.split("."):
        layer = getattr(layer, part, None)
        if layer is None:
            return None
    return layer


def _set(layer: nn.Layer, path: str, value: nn.Layer) -> None:
    *parents, last = path.split(".")
    for part in parents:
        layer = getattr(layer, part)
    setattr(layer, last, value)


def _bn_affine(bn: _BN) -> Tuple[np.ndarray, np.ndarray]:
    """BatchNorm in eval mode as y = a * x + b per channel."""
    var = bn._variance.numpy().astype(np.float64)
    mean = bn._mean.numpy().astype(np.float64)
    gamma = bn.weight.numpy().astype(np.float64) if bn.weight is not None else np.ones_like(mean)
    beta = bn.bias.numpy().astype(np.float64) if bn.bias is not None else np.zeros_like(mean)
    a = gamma / np.sqrt(var + bn._epsilon)
    return a, beta - mean * a


def _ensure_bias(layer: nn.Layer, size: int) -> None:
    if layer.bias is None:
        layer.bias = layer.create_parameter([size], is_bias=True, default_initializer=nn.initializer.Constant(0.0))


def _fold(bn: _BN, target: nn.Layer, where: str) -> bool:
    a, b = _bn_affine(bn)
    w = target.weight.numpy().astype(np.float64)
    if isinstance(target, nn.Linear):  # Paddle Linear weight: [in, out]
        out_features = w.shape[1]
        _ensure_bias(target, out_features)
        c = target.bias.numpy().astype(np.float64)
        if where == "in":
            new_w, new_c = a[:, None] * w, c + b @ w
        else:
            new_w, new_c = w * a[None, :], a * c + b
    elif isinstance(target, nn.Conv2D):  # weight [out, in/groups, kh, kw]
        if where == "in" and (target._groups != 1 or any(k != 1 for k in target._kernel_size)):
            return False  # a padded or grouped conv would see the shift differently at the borders
        _ensure_bias(target, w.shape[0])
        c = target.bias.numpy().astype(np.float64)
        if where == "in":
            new_w = w * a[None, :, None, None]
            new_c = c + np.einsum("oi,i->o", w[:, :, 0, 0], b)
        else:
            new_w, new_c = w * a[:, None, None, None], a * c + b
    else:
        return False
    target.weight.set_value(new_w.astype(np.float32))
    target.bias.set_value(new_c.astype(np.float32))
    return True


def fold_batchnorm(model: nn.Layer, inplace: bool = False) -> nn.Layer:
    """An eval-mode model equal to ``model`` with every exactly foldable BatchNorm folded away (see module doc).

    The folded model's ``folded_bn`` attribute lists the BatchNorms that were folded.
    """
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    folded = []
    for name, layer in [("", model)] + list(model.named_sublayers()):
        for bn_path, target_path, where in _FOLD_RULES.get(type(layer).__name__, []):
            bn, target = _get(layer, bn_path), _get(layer, target_path)
            if isinstance(bn, _BN) and target is not None and _fold(bn, target, where):
                _set(layer, bn_path, nn.Identity())
                folded.append(f"{name + '.' if name else ''}{bn_path}")
    model.folded_bn = folded
    return model


def remaining_batchnorms(model: nn.Layer) -> List[str]:
    return [n for n, m in model.named_sublayers() if isinstance(m, _BN)]


# ----------------------------------------------------------------------------------------------- export

def _floats(value: Any) -> List[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]


def preprocessing_from_transforms(spec: Optional[Sequence[Dict[str, Any]]], image_size: int) -> List[Dict[str, Any]]:
    """The eval transforms as predictor steps (resize, center_crop, to_float, normalize); others cannot be exported."""
    from .data.transforms import default_transforms
    steps: List[Dict[str, Any]] = []
    for item in spec or default_transforms(image_size, train=False):
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
            raise ValueError(f"the eval transform '{name}' cannot be reproduced by the predictor; use Resize, "
                             "CenterCrop, ToTensor and Normalize in Data.Eval.transforms")
    return steps


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
    sidecar = {
        **meta,
        "input_size": [c, h, w],
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

    The output folder is ``--out``, else ``Export.output_dir``, else ``<run>/inference`` beside the checkpoints.
    Class names come from ``Infer.label_file`` or the run's ``labels.txt``. Returns the files and the check's
    maximum absolute difference.
    """
    from .engine.checkpoint import load_fitting_weights, load_weights
    from .registry import create_model

    kwargs = {k: v for k, v in cfg["Model"].items() if k != "name"}
    kwargs["in_chans"] = cfg["Data"]["channels"]
    state = load_weights(weights) if weights else None
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(weights))) if weights else None
    labels = read_labels(cfg["Infer"]["label_file"]) or read_labels(run_dir and os.path.join(run_dir, "labels.txt"))
    if state is not None and "head.weight" in state:
        kwargs["num_classes"] = int(state["head.weight"].shape[1])
    elif not labels:
        from .data import class_names
        labels = class_names(cfg["Data"])
    kwargs.setdefault("num_classes", len(labels))
    name = cfg["Model"]["name"]
    net = create_model(name, **kwargs)
    if state is not None:
        load_fitting_weights(net, state, weights, name)
    size = cfg["Export"]["image_size"] or cfg["Data"]["image_size"]
    input_size = (cfg["Data"]["channels"], size, size)
    if labels and len(labels) != net.num_classes:
        raise ValueError(f"{len(labels)} class names for a model with {net.num_classes} classes: fix Infer.label_file")
    out_dir = out_dir or cfg["Export"]["output_dir"] or (os.path.join(run_dir, "inference") if run_dir else
                                                         os.path.join(cfg["Global"]["output_dir"], f"{name}_inference"))
    fold = cfg["Export"]["fold_bn"] if fold is None else fold
    meta = {
        "model": name,
        "variant": {k: getattr(net, a) for k, a in (("norm", "norm_name"), ("ffn", "ffn_name"),
                                                     ("ffn_norm", "ffn_norm_name")) if getattr(net, a, None)},
        "num_classes": net.num_classes,
        "class_names": labels or [str(i) for i in range(net.num_classes)],
        "preprocess": preprocessing_from_transforms(cfg["Data"]["Eval"]["transforms"], size),
        "weights": os.path.abspath(weights) if weights else "random (no --weights)",
    }
    files = export_model(net, out_dir, input_size, meta, fold=fold)
    result: Dict[str, Any] = {"files": files, "out_dir": out_dir}
    if check:
        from .inference import Predictor, PredictorOptions
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
    """Export a registered model with random weights at its default input size (for benchmarks and smoke tests)."""
    from .registry import create_model
    net = create_model(name, **model_kwargs)
    c, h, _ = net.default_input_size
    size = image_size or h
    from .data.transforms import default_transforms
    spec = default_transforms(size, train=False) if c == 3 else default_transforms(size, False, [0.5] * c, [0.5] * c)
    meta = {"model": name, "num_classes": net.num_classes, "class_names": [str(i) for i in range(net.num_classes)],
            "preprocess": preprocessing_from_transforms(spec, size), "weights": "random (registry name)"}
    return export_model(net, out_dir, (c, size, size), meta, fold=fold)
