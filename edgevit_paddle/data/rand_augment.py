"""RandAugment as timm implements it (``rand_augment_transform``), which DeiT and the EdgeViT authors train with
(``rand-m9-mstd0.5-inc1``). Paddle 3.3's ``paddle.vision.transforms`` has no RandAugment.

Config string ``rand-<key><value>-...``: ``m`` magnitude (0..10), ``n`` operations per image (default 2), ``mstd``
magnitude noise (each operation draws its magnitude from N(m, mstd), clipped to [0, ``mmax``]), ``mmax`` upper bound
(default 10), ``inc1`` the "increasing" operation set whose severity grows with the magnitude. Each chosen operation
(with replacement) is applied with probability 0.5, as in timm. Works on HWC/HW uint8 arrays (through PIL, as timm
does); random draws come from Python's ``random`` and NumPy's global generator, which the datasets seed per sample.
"""
from __future__ import annotations

import random
import re
from typing import List, Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from ..errors import ConfigError
from ..model_cfg import IMAGENET_MEAN

_LEVEL_DENOM = 10.0
#: timm's fill colour: the dataset mean in 0..255
_IMAGENET_FILL = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)
_RESAMPLE = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}


def _negate(v: float) -> float:
    return -v if random.random() > 0.5 else v


# -- level -> argument (timm's _*_level_to_arg) ------------------------------------------------------------------
def _rotate_arg(level, hp):
    return (_negate(level / _LEVEL_DENOM * 30.0),)


def _enhance_arg(level, hp):
    return (level / _LEVEL_DENOM * 1.8 + 0.1,)


def _enhance_increasing_arg(level, hp):
    return (max(0.1, 1.0 + _negate(level / _LEVEL_DENOM * 0.9)),)


def _shear_arg(level, hp):
    return (_negate(level / _LEVEL_DENOM * 0.3),)


def _translate_rel_arg(level, hp):
    return (_negate(level / _LEVEL_DENOM * hp["translate_pct"]),)


def _posterize_arg(level, hp):
    return (int(level / _LEVEL_DENOM * 4),)


def _posterize_increasing_arg(level, hp):
    return (4 - _posterize_arg(level, hp)[0],)


def _solarize_arg(level, hp):
    return (int(level / _LEVEL_DENOM * 256),)


def _solarize_increasing_arg(level, hp):
    return (256 - _solarize_arg(level, hp)[0],)


def _solarize_add_arg(level, hp):
    return (int(level / _LEVEL_DENOM * 110),)


# -- operations on PIL images (timm's) -----------------------------------------------------------------------------
def _affine(img, matrix, hp):
    return img.transform(img.size, Image.AFFINE, matrix, resample=hp["resample"], fillcolor=hp["fill"])


def _posterize(img, bits):
    """Keep the ``bits`` high bits (0 keeps none: black, as Pillow < 10 did; newer Pillow refuses 0)."""
    if bits >= 8:
        return img
    mask = (0xFF << (8 - max(0, int(bits)))) & 0xFF
    return img.point([v & mask for v in range(256)] * len(img.getbands()))


def _solarize_add(img, add, thresh=128):
    lut = [min(255, i + add) if i < thresh else i for i in range(256)]
    return img.point(lut * (3 if img.mode == "RGB" else 1)) if img.mode in ("L", "RGB") else img


_OPS = {
    "AutoContrast": (lambda img, hp: ImageOps.autocontrast(img), None),
    "Equalize": (lambda img, hp: ImageOps.equalize(img), None),
    "Invert": (lambda img, hp: ImageOps.invert(img), None),
    "Rotate": (lambda img, hp, d: img.rotate(d, resample=hp["resample"], fillcolor=hp["fill"]), _rotate_arg),
    "Posterize": (lambda img, hp, b: _posterize(img, b), _posterize_arg),
    "PosterizeIncreasing": (lambda img, hp, b: _posterize(img, b), _posterize_increasing_arg),
    "Solarize": (lambda img, hp, t: ImageOps.solarize(img, t), _solarize_arg),
    "SolarizeIncreasing": (lambda img, hp, t: ImageOps.solarize(img, t), _solarize_increasing_arg),
    "SolarizeAdd": (lambda img, hp, a: _solarize_add(img, a), _solarize_add_arg),
    "Color": (lambda img, hp, f: ImageEnhance.Color(img).enhance(f), _enhance_arg),
    "ColorIncreasing": (lambda img, hp, f: ImageEnhance.Color(img).enhance(f), _enhance_increasing_arg),
    "Contrast": (lambda img, hp, f: ImageEnhance.Contrast(img).enhance(f), _enhance_arg),
    "ContrastIncreasing": (lambda img, hp, f: ImageEnhance.Contrast(img).enhance(f), _enhance_increasing_arg),
    "Brightness": (lambda img, hp, f: ImageEnhance.Brightness(img).enhance(f), _enhance_arg),
    "BrightnessIncreasing": (lambda img, hp, f: ImageEnhance.Brightness(img).enhance(f), _enhance_increasing_arg),
    "Sharpness": (lambda img, hp, f: ImageEnhance.Sharpness(img).enhance(f), _enhance_arg),
    "SharpnessIncreasing": (lambda img, hp, f: ImageEnhance.Sharpness(img).enhance(f), _enhance_increasing_arg),
    "ShearX": (lambda img, hp, f: _affine(img, (1, f, 0, 0, 1, 0), hp), _shear_arg),
    "ShearY": (lambda img, hp, f: _affine(img, (1, 0, 0, f, 1, 0), hp), _shear_arg),
    "TranslateXRel": (lambda img, hp, p: _affine(img, (1, 0, p * img.size[0], 0, 1, 0), hp), _translate_rel_arg),
    "TranslateYRel": (lambda img, hp, p: _affine(img, (1, 0, 0, 0, 1, p * img.size[1]), hp), _translate_rel_arg),
}

#: timm's _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS
RAND_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
            "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")
RAND_INCREASING_OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
                       "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
                       "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


class RandAugment:
    """timm's RandAugment from a config string (see module doc), e.g. ``RandAugment: {config_str:
    rand-m9-mstd0.5-inc1, interpolation: bicubic}``.

    Args:
        config_str: ``rand-m9-mstd0.5-inc1`` style.
        interpolation: resampling of the geometric operations (timm uses the training interpolation).
        fill: fill colour of uncovered pixels (timm: the dataset mean in 0..255; ImageNet's by default).
        translate_pct: largest translation as a fraction of the side (timm: 0.45).
        prob: probability of applying each chosen operation (timm: 0.5).
    """

    def __init__(self, config_str: str = "rand-m9-mstd0.5-inc1", interpolation: str = "bicubic",
                 fill: Sequence[int] = _IMAGENET_FILL, translate_pct: float = 0.45, prob: float = 0.5):
        parts = str(config_str).split("-")
        if parts[0] != "rand":
            raise ConfigError(f"RandAugment config_str '{config_str}' must start with 'rand-', e.g. "
                              "rand-m9-mstd0.5-inc1")
        self.magnitude, self.num_ops, self.std, self.max, increasing = 10.0, 2, 0.0, _LEVEL_DENOM, False
        for part in parts[1:]:
            m = re.fullmatch(r"(mstd|mmax|m|n|inc)([0-9.]+)", part)
            if not m:
                raise ConfigError(f"RandAugment config_str '{config_str}': unknown part '{part}'; valid: m<magnitude>, "
                                  "n<ops>, mstd<noise>, mmax<upper bound>, inc<0|1>")
            key, value = m.group(1), float(m.group(2))
            if key == "m":
                self.magnitude = value
            elif key == "n":
                self.num_ops = int(value)
            elif key == "mstd":
                self.std = value
            elif key == "mmax":
                self.max = value
            else:
                increasing = bool(value)
        if interpolation not in _RESAMPLE:
            raise ConfigError(f"RandAugment interpolation '{interpolation}'; valid: {', '.join(_RESAMPLE)}")
        self.config_str = config_str
        self.ops: List[str] = list(RAND_INCREASING_OPS if increasing else RAND_OPS)
        self.prob = float(prob)
        self.hp = {"resample": _RESAMPLE[interpolation], "translate_pct": float(translate_pct),
                   "fill": tuple(int(v) for v in fill)}

    def _magnitude(self) -> float:
        m = self.magnitude
        if self.std == float("inf"):
            m = random.uniform(0, m)
        elif self.std > 0:
            m = random.gauss(m, self.std)
        return max(0.0, min(m, self.max))

    def __call__(self, img: np.ndarray) -> np.ndarray:
        arr = np.asarray(img)
        squeeze = arr.ndim == 3 and arr.shape[2] == 1
        pil = Image.fromarray(arr[:, :, 0] if squeeze else arr)
        hp = dict(self.hp, fill=self.hp["fill"] if pil.mode == "RGB" else self.hp["fill"][0])
        for name in np.random.choice(self.ops, self.num_ops, replace=True):
            if self.prob < 1.0 and random.random() > self.prob:
                continue
            fn, level_fn = _OPS[name]
            magnitude = self._magnitude()
            pil = fn(pil, hp, *level_fn(magnitude, hp)) if level_fn else fn(pil, hp)
        out = np.asarray(pil)
        return out[:, :, None] if squeeze else out

    def __repr__(self) -> str:
        return f"RandAugment({self.config_str})"
