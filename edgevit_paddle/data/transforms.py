"""Transforms from config: a list of one-key dicts naming ``paddle.vision.transforms`` classes.

Images reach the transforms as HWC uint8 NumPy arrays in RGB order (OpenCV backend), so ``Resize`` and friends run
through OpenCV, the same code the inference predictor uses.

    transforms:
      - Resize: {size: 146}
      - CenterCrop: {size: 128}
      - ToTensor: {}
      - Normalize: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}

``Resize`` and ``RandomResizedCrop`` take ``antialias: true`` besides Paddle's arguments: they then resize through
Paddle's PIL backend, whose filters low-pass when shrinking as timm's (torchvision's PIL) transforms do, so the
authors' recipe sees the authors' pixels; OpenCV's bicubic does not (a high-frequency pattern differs by up to 54 grey
levels). The exported predictor repeats it (``inference.yml``: ``resize: {..., antialias: true}``).

Besides Paddle's, ``RandAugment`` (timm's, ``rand_augment.py``) and ``TimmRandomErasing`` (``random_erasing.py``).
"""
from __future__ import annotations

import inspect
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle.vision.transforms as T
import paddle.vision.transforms.functional as F

from ..errors import ConfigError, did_you_mean
from ..image import center_crop_box, from_pil, resize_antialiased, short_side_size, to_channels, to_pil
from ..model_cfg import DEFAULT_CROP_PCT, IMAGENET_MEAN, IMAGENET_STD, ROUNDINGS, ModelCfg, resize_for_crop
from .rand_augment import RandAugment
from .random_erasing import TimmRandomErasing


class _Antialiased:
    """With ``antialias``, a Paddle resizing transform runs on a PIL image (Paddle's PIL backend) and gives the array
    back; the random draws are the same either way."""

    def __init__(self, *args, antialias: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.antialias = bool(antialias)

    def _apply_image(self, img):
        if not self.antialias or not isinstance(img, np.ndarray):
            return super()._apply_image(img)
        return from_pil(super()._apply_image(to_pil(img)), img)


def _hw(img) -> tuple:
    return tuple(img.shape[:2]) if isinstance(img, np.ndarray) else (img.size[1], img.size[0])


class Resize(_Antialiased, T.Resize):
    """``paddle.vision.transforms.Resize`` (``size``, ``interpolation``) plus ``antialias`` (module doc); an int
    ``size`` (the short side) rounds as ``rounding`` says (``model_cfg.ROUNDINGS``; ``image.short_side_size``):
    by default as PaddleClas and PaddleX do, so a deployed model's clients see the pixels its evaluation saw."""

    def __init__(self, size, interpolation: str = "bilinear", antialias: bool = False, rounding: str = "paddleclas"):
        super().__init__(size, interpolation, antialias=antialias)
        self.rounding = _rounding(rounding)

    def _apply_image(self, img):
        if not isinstance(self.size, int):
            return super()._apply_image(img)
        h, w = _hw(img)
        target = short_side_size(h, w, self.size, self.rounding)
        if target == (h, w):
            return img
        if self.antialias and isinstance(img, np.ndarray):
            return resize_antialiased(img, *target, self.interpolation)
        return F.resize(img, target, self.interpolation)


class CenterCrop(T.CenterCrop):
    """``paddle.vision.transforms.CenterCrop`` with the offsets rounded as ``rounding`` says
    (``image.center_crop_box``): by default down, as PaddleClas's and PaddleX's ``CropImage`` place the crop."""

    def __init__(self, size, rounding: str = "paddleclas"):
        super().__init__(size)
        self.rounding = _rounding(rounding)

    def _apply_image(self, img):
        ch, cw = (int(v) for v in self.size)
        top, left = center_crop_box(*_hw(img), ch, cw, self.rounding)
        return F.crop(img, top, left, ch, cw)


def _rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise ConfigError(f"rounding '{rounding}' is not one of {', '.join(ROUNDINGS)}"
                          f"{did_you_mean(rounding, ROUNDINGS)}")
    return rounding


class RandomResizedCrop(_Antialiased, T.RandomResizedCrop):
    """``paddle.vision.transforms.RandomResizedCrop`` plus ``antialias`` (module doc)."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3.0 / 4, 4.0 / 3), interpolation: str = "bilinear",
                 antialias: bool = False):
        super().__init__(size, scale, ratio, interpolation, antialias=antialias)


#: ours: the antialiased resizes, the resize and crop rounded as PaddleClas/PaddleX round them, and for the authors'
#: recipe what Paddle 3.3 lacks (RandAugment) or cannot replay on resume (its RandomErasing)
EXTRA = {"Resize": Resize, "CenterCrop": CenterCrop, "RandomResizedCrop": RandomResizedCrop,
         "RandAugment": RandAugment, "TimmRandomErasing": TimmRandomErasing}
ALLOWED = ("Resize", "CenterCrop", "RandomResizedCrop", "RandomCrop", "RandomHorizontalFlip", "RandomVerticalFlip",
           "RandomRotation", "ColorJitter", "Pad", "RandomErasing", "ToTensor", "Normalize", *EXTRA)


def _transform_class(name: str):
    return EXTRA.get(name) or getattr(T, name)


class ToChannels:
    """Make an HW / HWC uint8 image have ``channels`` channels (grey -> RGB by copying, RGB(A) -> grey by weights)."""

    def __init__(self, channels: int = 3):
        self.channels = channels

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return to_channels(img, self.channels)

    def __repr__(self) -> str:
        return f"ToChannels({self.channels})"


def _entry(item: Any, where: str):
    if not isinstance(item, dict) or len(item) != 1:
        raise ConfigError(f"{where}: each transform must be a one-key mapping such as '- Resize: {{size: 128}}', "
                          f"got {item!r}")
    name, args = next(iter(item.items()))
    if name not in ALLOWED:
        raise ConfigError(f"{where}: unknown transform '{name}'{did_you_mean(name, ALLOWED)}; valid: "
                          f"{', '.join(ALLOWED)}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: arguments of {name} must be a mapping, e.g. {{size: 128}}, got {args!r}")
    valid = [p for p in inspect.signature(_transform_class(name).__init__).parameters if p not in ("self", "keys")]
    bad = [k for k in args if k not in valid]
    if bad:
        raise ConfigError(f"{where}: {name} has no argument '{bad[0]}'; valid: {', '.join(valid)}")
    return name, args


def check_transforms(spec: Optional[Sequence[Any]], where: str) -> None:
    """Validate a transforms list without building it (names and argument names)."""
    for item in spec or []:
        _entry(item, where)


#: transforms that set the output size, and the argument that holds it
_SIZING = {"Resize": "size", "CenterCrop": "size", "RandomResizedCrop": "size", "RandomCrop": "size"}


def with_sizes(spec: Optional[Sequence[Dict[str, Any]]], image_size: int, crop_pct: float,
               rounding: str = "paddleclas"):
    """``spec`` with the size of every sizing transform that states none: crops get ``image_size``, a ``Resize`` the
    short side ``image_size / crop_pct`` (timm's ``input_size`` and ``crop_pct`` driving ``create_transform``), so
    ``Data.image_size`` alone moves a recipe to another size. A stated size is kept. ``rounding`` (``Data.rounding``)
    goes to every ``Resize`` and ``CenterCrop`` that states none, when it is not the default."""
    if spec is None:
        return None
    out = []
    for item in spec:
        (name, args), = item.items()
        args = dict(args or {})
        if name in _SIZING and _SIZING[name] not in args:
            args[_SIZING[name]] = resize_for_crop(image_size, crop_pct, rounding) if name == "Resize" \
                else int(image_size)
        if name in ("Resize", "CenterCrop") and rounding != ROUNDINGS[0]:
            args.setdefault("rounding", rounding)
        out.append({name: args})
    return out


def output_size(spec: Optional[Sequence[Any]]) -> Optional[int]:
    """The square side a transforms list ends at, when its last sizing transform fixes one (a crop, or a resize to
    [s, s]); None when it does not (no sizing transform, or a short-side resize whose other side follows the image)."""
    last = None
    for item in spec or []:
        if isinstance(item, dict) and len(item) == 1:
            (name, args), = item.items()
            if name in _SIZING and isinstance(args, dict) and _SIZING[name] in args:
                last = (name, args[_SIZING[name]])
    if last is None:
        return None
    name, size = last
    if isinstance(size, int):
        return None if name == "Resize" else size
    if isinstance(size, (list, tuple)) and len(size) == 2 and size[0] == size[1] and isinstance(size[0], int):
        return size[0]
    return -1  # not square: never equal to Data.image_size


def build_transforms(spec: Optional[Sequence[Dict[str, Any]]], channels: int, where: str = "transforms"):
    """Compose ``ToChannels(channels)`` and the configured transforms."""
    ops: List[Any] = [ToChannels(channels)]
    for item in spec or []:
        name, args = _entry(item, where)
        args = {k: tuple(v) if isinstance(v, list) and k in ("size", "scale", "ratio") else v for k, v in args.items()}
        cls = _transform_class(name)
        try:
            inspect.signature(cls).bind(**args)  # missing or unknown arguments are the config's
        except TypeError as e:
            raise ConfigError(f"{where}: bad arguments for {name} {args}: {e}") from None
        # values Paddle's own constructors refuse (they assert, or raise ValueError / TypeError) are the config's too;
        # a TypeError from any other constructor (ours) is a bug and keeps its traceback
        refused = (ValueError, AssertionError) + ((TypeError,) if cls.__module__.startswith("paddle.") else ())
        try:
            ops.append(cls(**args))
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
        except refused as e:
            raise ConfigError(f"{where}: bad arguments for {name} {args}: {e}") from None
    return T.Compose(ops)


def default_transforms(image_size: int, train: bool, mean=IMAGENET_MEAN, std=IMAGENET_STD, flip: bool = True,
                       crop_pct: float = DEFAULT_CROP_PCT, rounding: str = "paddleclas"):
    """The transforms used when a config gives none: RandomResizedCrop/flip for training, resize+center crop else
    (sized by ``with_sizes``)."""
    if train:
        spec = [{"RandomResizedCrop": {"size": image_size, "scale": [0.35, 1.0]}}]
        spec += [{"RandomHorizontalFlip": {}}] if flip else []
    else:
        spec = [{"Resize": {}}, {"CenterCrop": {}}]
    spec = spec + [{"ToTensor": {}}, {"Normalize": {"mean": list(mean), "std": list(std)}}]
    return with_sizes(spec, image_size, crop_pct, rounding)


#: what ``resolve_data_config`` returns and ``create_transform`` takes (timm's data config)
DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def resolve_data_config(args: Optional[Dict[str, Any]] = None, pretrained_cfg=None, model=None) -> Dict[str, Any]:
    """timm's ``resolve_data_config``: the data config of ``model`` (its ``default_cfg``) or of ``pretrained_cfg``,
    with what ``args`` sets over it (``{"input_size": (3, 96, 96)}``; ``img_size`` sets the sides)."""
    cfg = pretrained_cfg if pretrained_cfg is not None else getattr(model, "default_cfg", None)
    if cfg is None:
        raise ConfigError("resolve_data_config needs a model or a pretrained_cfg")
    out = {k: (tuple(cfg[k]) if isinstance(cfg[k], (list, tuple)) else cfg[k]) for k in DATA_CONFIG_KEYS}
    args = dict(args or {})
    if args.get("img_size"):
        side = int(args.pop("img_size"))
        out["input_size"] = (out["input_size"][0], side, side)
    out.update({k: v for k, v in args.items() if k in DATA_CONFIG_KEYS and v is not None})
    return out


def create_transform(input_size, is_training: bool = False, interpolation: str = "bilinear", mean=IMAGENET_MEAN,
                     std=IMAGENET_STD, crop_pct: float = DEFAULT_CROP_PCT, crop_mode: str = "center"):
    """timm's ``create_transform`` for ``resolve_data_config``'s output: the model's eval transform (what the export
    and the predictor compute; ``ModelCfg.eval_transform``) or its basic training one, on HWC uint8 RGB arrays."""
    if crop_mode != "center":
        raise ConfigError(f"crop_mode '{crop_mode}': only 'center' is supported")
    channels, side = (int(input_size[0]), int(input_size[-1])) if isinstance(input_size, (list, tuple)) \
        else (3, int(input_size))
    cfg = ModelCfg("", "", (channels, side, side), interpolation=interpolation, mean=tuple(mean), std=tuple(std),
                   crop_pct=float(crop_pct))
    return build_transforms(cfg.train_transform() if is_training else cfg.eval_transform(), channels)

