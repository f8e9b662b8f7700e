"""The predictor's preprocessing (``inference.yml``'s ``preprocess`` steps) from a config's eval transforms or from a
model's ``default_cfg``, always ending at the exported input size.

Steps: ``resize`` (``size`` int: the short side, aspect kept, both sides rounded as PaddleClas and PaddleX round them;
``[h, w]``: exactly; ``interpolation``; ``antialias: true``: PIL's filter, which low-passes when shrinking, else
OpenCV's), ``center_crop`` (offsets rounded down, as theirs; both take ``rounding: timm`` for timm's rules,
``model_cfg.ROUNDINGS``), ``to_float`` (divide by 255) and ``normalize`` -- what
training's eval pipeline (``data/transforms.py``: our ``Resize`` and ``CenterCrop``, Paddle's ``ToTensor`` and
``Normalize``) does on a NumPy image, so the predictor sees the same numbers. ``ecosystem.py`` writes the same steps in
PaddleClas's and PaddleX's vocabulary.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..errors import ExportError
from ..model_cfg import ROUNDINGS, ModelCfg, resize_for_crop

Steps = List[Dict[str, Any]]


def _floats(value: Any) -> List[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)]


def _resize_args(size: Any, interpolation: str, antialias: bool, rounding: str = ROUNDINGS[0]) -> Dict[str, Any]:
    return {"size": size, "interpolation": interpolation, **({"antialias": True} if antialias else {}),
            **_rounding(rounding)}


def _rounding(rounding: str) -> Dict[str, str]:
    """A step's ``rounding`` argument: written only when it is not the default (PaddleClas's)."""
    return {} if rounding == ROUNDINGS[0] else {"rounding": rounding}


def from_transforms(spec: Sequence[Dict[str, Any]]) -> Steps:
    """The eval transforms as predictor steps; a transform the predictor cannot reproduce is an ``ExportError``."""
    steps: Steps = []
    for item in spec:
        (name, args), = item.items()
        args = args or {}
        if name == "Resize":
            steps.append({"resize": _resize_args(args["size"], args.get("interpolation", "bilinear"),
                                                 bool(args.get("antialias", False)),
                                                 args.get("rounding", ROUNDINGS[0]))})
        elif name == "CenterCrop":
            steps.append({"center_crop": {"size": args["size"], **_rounding(args.get("rounding", ROUNDINGS[0]))}})
        elif name == "ToTensor":
            steps.append({"to_float": {"divisor": 255.0}})
        elif name == "Normalize":
            steps.append({"normalize": {"mean": _floats(args.get("mean", 0.0)), "std": _floats(args.get("std", 1.0))}})
        else:
            raise ExportError(f"the eval transform '{name}' cannot be reproduced by the predictor; use Resize, "
                              "CenterCrop, ToTensor and Normalize in Data.Eval.transforms")
    return steps


def from_cfg(cfg: ModelCfg, size: Optional[int] = None) -> Steps:
    """The model's own eval preprocessing (``ModelCfg.eval_transform``: resize, centre crop, mean/std, antialiased
    as timm's ``create_transform`` (PIL) resizes)."""
    return from_transforms(cfg.eval_transform(size))


def _pair(size: Any) -> Optional[tuple]:
    if isinstance(size, int):
        return None
    return int(size[0]), int(size[1])


def fit_to_size(steps: Steps, size: int, crop_pct: float) -> Steps:
    """``steps`` changed so that every image, whatever its size and aspect, ends at ``size`` x ``size``.

    The exported program has one input size (a batch needs equal sizes), but an eval transform such as ``Resize(32)``
    alone (the short side) leaves a 500x375 photo at 42x32. Rules: a short-side resize at or above ``size`` gets a
    centre crop to ``size`` after it; no resize at all gets the model's own resize (``size / crop_pct``) and crop; a
    resize or crop that ends at another size than ``size`` (e.g. ``Export.image_size`` differs from the trained size)
    keeps its ratio of resize to crop at ``size``.
    """
    geometric = [s for s in steps if next(iter(s)) in ("resize", "center_crop")]
    rest = [s for s in steps if next(iter(s)) not in ("resize", "center_crop")]
    first = next((s["resize"] for s in geometric if "resize" in s), {})
    interp, antialias = first.get("interpolation", "bilinear"), bool(first.get("antialias", False))
    rounding = next((a["rounding"] for s in geometric for a in s.values() if "rounding" in a), ROUNDINGS[0])
    last = geometric[-1] if geometric else None
    if last is not None:
        (kind, args), = last.items()
        exact = _pair(args["size"])
        if exact == (size, size) or (kind == "center_crop" and args["size"] == size):
            return steps
        if kind == "resize" and exact is None and int(args["size"]) >= size:
            return geometric + [{"center_crop": {"size": size, **_rounding(rounding)}}] + rest
        resizes = [s["resize"]["size"] for s in geometric if "resize" in s and _pair(s["resize"]["size"]) is None]
        crops = [s["center_crop"]["size"] for s in geometric if "center_crop" in s]
        if resizes and crops and isinstance(crops[-1], int):
            crop_pct = crops[-1] / float(resizes[-1])
    return [{"resize": _resize_args(resize_for_crop(size, crop_pct, rounding), interp, antialias, rounding)},
            {"center_crop": {"size": size, **_rounding(rounding)}}] + rest
