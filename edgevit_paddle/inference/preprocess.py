"""Predictor preprocessing with OpenCV, PIL and NumPy: the eval transforms of training, step for step.

Steps come from ``inference.yml`` (``resize``, ``center_crop``, ``to_float``, ``normalize``); they mirror
``paddle.vision.transforms`` on NumPy images (its OpenCV backend, or PIL for a resize with ``antialias: true``, as
training's ``Resize(antialias=True)``), so a predictor sees the same numbers as the dygraph model (tested to 1e-6).
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import cv2
import numpy as np

from ..errors import PredictorError
from ..image import center_crop_box, resize_antialiased, short_side_size, to_channels
from ..model_cfg import ROUNDINGS

_INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA,
           "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def resize(img: np.ndarray, size, interpolation: str = "bilinear", antialias: bool = False,
           rounding: str = "paddleclas") -> np.ndarray:
    """An int resizes the shorter side (aspect kept, rounded as ``rounding`` says: ``image.short_side_size``); [h, w]
    resizes exactly. ``antialias``: PIL's resize (low-passes when shrinking, as timm's eval transform), else
    OpenCV's."""
    h, w = img.shape[:2]
    oh, ow = short_side_size(h, w, size, rounding) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if (oh, ow) == (h, w):
        return img
    if antialias:
        return resize_antialiased(img, oh, ow, interpolation)
    out = cv2.resize(img, (ow, oh), interpolation=_INTERP[interpolation])
    return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out


def center_crop(img: np.ndarray, size, rounding: str = "paddleclas") -> np.ndarray:
    ch, cw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    top, left = center_crop_box(img.shape[0], img.shape[1], ch, cw, rounding)
    return img[top:top + ch, left:left + cw]


class Preprocessor:
    """Callable: decoded uint8 image (HW or HWC, RGB) -> float32 CHW array ready for the model."""

    def __init__(self, steps: Sequence[Dict[str, Any]], channels: int = 3):
        self.steps: List = []
        self.channels = channels
        for step in steps:
            (name, args), = step.items()
            if name not in ("resize", "center_crop", "to_float", "normalize"):
                raise PredictorError(f"unknown preprocessing step '{name}' in inference.yml; re-export the model")
            if (args or {}).get("rounding", ROUNDINGS[0]) not in ROUNDINGS:
                raise PredictorError(f"unknown rounding '{args['rounding']}' in inference.yml's {name} step (valid: "
                                     f"{', '.join(ROUNDINGS)}); re-export the model")
            self.steps.append((name, args or {}))

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = to_channels(img, self.channels)
        scaled = False
        for name, args in self.steps:
            if name == "resize":
                img = resize(img, args["size"], args.get("interpolation", "bilinear"), bool(args.get("antialias")),
                             args.get("rounding", "paddleclas"))
            elif name == "center_crop":
                img = center_crop(img, args["size"], args.get("rounding", "paddleclas"))
            elif name == "to_float":
                img = img.astype(np.float32) / np.float32(args.get("divisor", 255.0))
                scaled = True
            else:
                mean = np.asarray(args["mean"], np.float32)
                std = np.asarray(args["std"], np.float32)
                img = (img.astype(np.float32) - mean) / std
        if not scaled and img.dtype == np.uint8:
            img = img.astype(np.float32)
        return np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)
