"""``ModelCfg``: everything a model says about itself, in one object (timm's ``pretrained_cfg``/``default_cfg``).

Every model built through the registry carries one as ``model.default_cfg``; the export, the predictor's sidecar,
the benchmark, the complexity table, the summary tool and the trainer read it instead of keeping lists of their own.

- data facts, from the preset in the model file's ``default_cfgs``: ``input_size`` (C, H, W), ``mean``/``std``,
  ``interpolation`` and ``crop_pct`` of the eval transform (resize the short side to ``H / crop_pct``, centre-crop H);
- structure facts, from the built model: ``stride`` (H and W must be multiples of it), ``fixed_input_size`` (the model
  runs at ``input_size`` only once exported, e.g. ViT's position grid; else any multiple of the stride), ``family``,
  the variant ``switches`` the family studies with their choices, and the value of each for this model (``variant``);
- ``arch``: every constructor argument as resolved (preset, then the user's), except those that only regularise
  training (dropout rates). Two models with equal ``arch`` hold interchangeable weights: this is the identity stored
  with checkpoints and checked before weights are loaded;
- timm's other fields: ``num_classes``, ``first_conv`` and ``classifier`` (layer names), ``pool_size`` (the last
  feature map at ``input_size``), ``crop_mode``.

It reads as timm's does, as attributes and as a mapping (``cfg.mean``, ``cfg["mean"]``, ``cfg.get("crop_pct")``,
``dict(cfg)``); ``eval_transform``/``train_transform`` are its transforms as a config's list, which
``data.create_transform`` builds and the export's preprocessing follows.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

#: the attribute every classifier here keeps its head in (``Classifier.classifier_name``; timm's
#: ``default_cfg["classifier"]``)
CLASSIFIER = "head"
#: the eval transform's resize-to-crop ratio when a preset gives none (the ImageNet convention: 224 from 256)
DEFAULT_CROP_PCT = 0.875
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


#: how an eval transform rounds (``Data.rounding``, a ``Resize``'s or ``CenterCrop``'s ``rounding``). ``paddleclas``
#: (the default): PaddleClas's and PaddleX's predictors, so every client of an export sees the pixels its evaluation
#: saw: a short-side resize scales both sides and rounds them, a centre crop's offsets are rounded down, and
#: ``size / crop_pct`` is rounded. ``timm``: timm's and torchvision's, to reproduce the authors' numbers: the long
#: side truncated, the offsets rounded (Python's ``round``), ``size / crop_pct`` rounded down. One pixel apart on
#: some photos.
ROUNDINGS = ("paddleclas", "timm")


def resize_for_crop(size: int, crop_pct: float = DEFAULT_CROP_PCT, rounding: str = "paddleclas") -> int:
    """The short side an eval transform resizes to before its centre crop of ``size`` (timm's ``size / crop_pct``;
    ``ROUNDINGS``)."""
    ratio = int(size) / float(crop_pct)
    return int(math.floor(ratio)) if rounding == "timm" else int(round(ratio))


@dataclass(frozen=True)
class ModelCfg(Mapping):
    """What a model says about itself (see module doc). Frozen: derive a changed copy with ``replace``."""

    name: str
    family: str
    input_size: Tuple[int, int, int] = (3, 224, 224)
    stride: int = 1
    fixed_input_size: bool = False
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = DEFAULT_CROP_PCT
    switches: Mapping[str, Tuple[Optional[str], ...]] = field(default_factory=dict)
    variant: Mapping[str, Any] = field(default_factory=dict)
    arch: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int = 1000
    first_conv: str = ""
    classifier: str = CLASSIFIER
    pool_size: Optional[Tuple[int, int]] = None
    crop_mode: str = "center"

    def replace(self, **changes: Any) -> "ModelCfg":
        return replace(self, **changes)

    # timm reads its cfg as a dict
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dataclass_fields__)

    def __len__(self) -> int:
        return len(self.__dataclass_fields__)

    def eval_transform(self, size: Optional[int] = None) -> List[Dict[str, Any]]:
        """The model's own eval transform, as a config's transform list: the short side to ``size / crop_pct``
        (antialiased, as timm's PIL transform resizes), the centre ``size`` crop, to [0, 1], mean/std."""
        size = int(size or self.input_size[1])
        return [{"Resize": {"size": self.eval_resize(size), "interpolation": self.interpolation, "antialias": True}},
                {"CenterCrop": {"size": size}}, *self._to_normalized_tensor()]

    def train_transform(self, size: Optional[int] = None) -> List[Dict[str, Any]]:
        """timm's basic training transform for the model: random resized crop (scale 0.08-1), horizontal flip,
        to [0, 1], mean/std."""
        size = int(size or self.input_size[1])
        return [{"RandomResizedCrop": {"size": size, "interpolation": self.interpolation, "antialias": True}},
                {"RandomHorizontalFlip": {}}, *self._to_normalized_tensor()]

    def _to_normalized_tensor(self) -> List[Dict[str, Any]]:
        return [{"ToTensor": {}}, {"Normalize": {"mean": [float(v) for v in self.mean],
                                                 "std": [float(v) for v in self.std]}}]

    @property
    def in_chans(self) -> int:
        return int(self.input_size[0])

    def variants(self) -> Iterator[Dict[str, Any]]:
        """Every combination of the family's switches (one empty dict when it has none)."""
        names = list(self.switches)
        for values in itertools.product(*(self.switches[n] for n in names)):
            yield dict(zip(names, values))

    def variant_label(self) -> str:
        """``norm=gn, ffn=conv`` (empty when the family has no switches)."""
        return ", ".join(f"{k}={v}" for k, v in self.variant.items() if v is not None)

    def small_size(self, at_least: int = 64) -> int:
        """The smallest valid input side of at least ``at_least`` px, or the default side when that is smaller
        (for quick tests and benchmarks)."""
        default = int(self.input_size[1])
        if default <= at_least:
            return default
        return -(-at_least // self.stride) * self.stride

    def check_size(self, h: int, w: int) -> Optional[str]:
        """Why an exported model cannot take an H x W input (None when it can)."""
        if self.fixed_input_size and (h, w) != tuple(self.input_size[1:]):
            return f"this model was exported for {self.input_size[1]}x{self.input_size[2]} inputs only"
        if h < self.stride or w < self.stride or h % self.stride or w % self.stride:
            return f"height and width must be multiples of {self.stride}"
        return None

    def eval_resize(self, size: Optional[int] = None) -> int:
        """The short side an image is resized to before the centre crop of ``size`` (default: the input size)."""
        return resize_for_crop(size or self.input_size[1], self.crop_pct)

    def identity(self, num_classes: int) -> Dict[str, Any]:
        """What the weights of this model are: its name and every architecture argument (``num_classes`` as given,
        since a head can be replaced after the build)."""
        return {"model": self.name, **{k: _plain(v) for k, v in self.arch.items()}, "num_classes": int(num_classes)}


def _plain(value: Any) -> Any:
    """Tuples as lists, so that an identity read back from JSON compares equal."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def identity_diff(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """The keys on which two identities differ, with (saved, wanted) values."""
    return {k: (saved.get(k), wanted.get(k)) for k in sorted(set(saved) | set(wanted))
            if _plain(saved.get(k)) != _plain(wanted.get(k))}
