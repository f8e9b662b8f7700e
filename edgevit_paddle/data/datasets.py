"""Datasets from config, all readable offline from local files.

``build_dataset`` is the entry point; where images come from is ``sources.py`` (one ``Source`` per name), what every
dataset yields is ``labeled.py`` (``(image float32 CHW, label int64 [1])`` with 0-based labels; unreadable images
replaced and reported), the per-sample seeds are ``seeding.py``, Flowers' extraction is ``archive.py``.

- ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (they ship with scikit-learn), upsampled by the
  transforms; a seeded split (``Data.train_fraction``) gives train/test.
- ``mnist``: the official files in ``Data.root``; when only the 10,000-image test set is there (as in
  ``../shared/data/mnist``), a seeded ``train_fraction`` split of it (8,000/2,000 by default), announced at start.
- ``flowers102``: ``102flowers.tgz``, ``imagelabels.mat``, ``setid.mat`` in ``Data.root``; labels made 0-based.
  Paddle's splits: ``train`` = 6,149 images (the original ``tstid``), ``valid`` = 1,020, ``test`` = 1,020 (``trnid``).
  The archive is extracted once beside it (atomically, so runs started together are safe); when that folder is
  read-only the files are linked into ``Data.cache_dir``.
- ``cifar10``/``cifar100``: ``cifar-10-python.tar.gz``/``cifar-100-python.tar.gz`` in ``Data.root``.
- ``imagefolder``: ``Data.root/<split>/<class>/*.jpg`` (splits ``train`` and ``val`` by default; ImageNet's
  ``train/<wnid>/*.JPEG`` layout). Opening only lists the files (one directory scan, nothing decoded: 100,000 files
  open in well under a second, see README); an image that cannot be read is met when it is loaded, replaced by the
  next readable one of its class (a class with none is a ``DataError``), and listed once per epoch by the trainer.
  An empty class folder, or a class missing from one split, is an error at open.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

import numpy as np

from ..errors import DataError
from ..model_cfg import DEFAULT_CROP_PCT, ROUNDINGS
from .labeled import LabeledDataset
from .sources import SOURCES, class_dirs
from .transforms import build_transforms, default_transforms

#: the values of ``Data.dataset``
DATASET_NAMES = tuple(SOURCES)


def class_names(data_cfg: Dict[str, Any]) -> List[str]:
    """The class names of the configured dataset without loading it (image folders: the train split's folders)."""
    known = SOURCES[data_cfg["dataset"]].classes
    if known is not None:
        return list(known)
    path = os.path.join(data_cfg["root"] or "", data_cfg["Train"]["split"])
    if not os.path.isdir(path):
        raise DataError(f"image folder '{path}' not found: set Data.root, or export from a training run's "
                        "checkpoint (its labels.txt holds the class names)")
    return class_dirs(path)


def transforms_spec(data_cfg: Dict[str, Any], split_section: str) -> List[Dict[str, Any]]:
    """The transforms ``Data.<split_section>`` uses: its own list, else the defaults for the dataset (digit sets are
    normalised to [-1, 1] and not flipped)."""
    spec = data_cfg[split_section]["transforms"]
    if spec is not None:
        return spec
    grey = SOURCES[data_cfg["dataset"]].grey
    mean_std = ([0.5] * data_cfg["channels"], [0.5] * data_cfg["channels"]) if grey else ()
    return default_transforms(data_cfg["image_size"], split_section == "Train", *mean_std, flip=not grey,
                              crop_pct=data_cfg.get("crop_pct", DEFAULT_CROP_PCT),
                              rounding=data_cfg.get("rounding", ROUNDINGS[0]))


def eval_transforms(data_cfg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The eval transforms of a ``Data`` config (what an exported model's preprocessing must reproduce)."""
    return transforms_spec(data_cfg, "Eval")


def build_dataset(data_cfg: Dict[str, Any], split_section: str) -> LabeledDataset:
    """The dataset of ``Data.<split_section>`` (``"Train"`` or ``"Eval"``) with its transforms."""
    section = data_cfg[split_section]
    transform = build_transforms(transforms_spec(data_cfg, split_section), data_cfg["channels"],
                                 f"Data.{split_section}.transforms")
    ds = SOURCES[data_cfg["dataset"]].build(data_cfg, section["split"], transform)
    limit = section.get("max_samples")
    if limit and limit < len(ds):  # a seeded subset, for quick experiments and smoke tests
        keep = np.random.RandomState(data_cfg["split_seed"]).permutation(len(ds))[:limit]
        ds.indices = [ds.indices[i] for i in sorted(keep)]
        ds.info.num_samples = len(ds.indices)
        ds.info.note = (ds.info.note + "; " if ds.info.note else "") + f"first {limit} of a seeded shuffle"
    return ds
