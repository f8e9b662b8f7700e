"""What every dataset here yields: ``LabeledDataset`` over an indexable source of (uint8 image, label) pairs, with its
transforms seeded per sample and unreadable images replaced and reported; the sources it wraps."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
from paddle.io import Dataset

from ..errors import DataError
from ..image import file_problem, read_image
from .seeding import sample_seed, seeded_transforms


@dataclass
class DatasetInfo:
    """What a run prints and records about its data."""

    name: str
    split: str
    num_samples: int
    num_classes: int
    class_names: List[str] = field(default_factory=list)
    note: str = ""

    def describe(self) -> str:
        note = f"; {self.note}" if self.note else ""
        return f"{self.name} '{self.split}': {self.num_samples} images, {self.num_classes} classes{note}"


class LabeledDataset(Dataset):
    """Wraps a dataset (or arrays) so that items are ``(transform(image), int64 [1] label - label_offset)``.

    ``ds[(epoch, i, draw)]`` (what the training loader's sampler asks for) applies the transforms with their random
    draws seeded by ``(seed, epoch, i, draw)``, so a resumed run, in any process or loader worker, sees exactly the
    augmented images the uninterrupted run saw (``draw`` tells apart the copies of one image that repeated
    augmentation puts in an epoch), and adds a third field: the index of an unreadable image that was replaced by the
    next readable one (of its class, where the source knows labels without reading), else -1 (the trainer lists them
    once per epoch); a class none of whose images can be read is a ``DataError``. ``ds[i]`` leaves the generators
    alone (eval transforms draw nothing) and warns about an unreadable image it replaces.
    """

    def __init__(self, base: Any, indices: Optional[Sequence[int]] = None, transform: Optional[Callable] = None,
                 label_offset: int = 0, info: Optional[DatasetInfo] = None, seed: int = 0):
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)
        self.transform = transform
        self.label_offset = label_offset
        self.info = info
        self.seed = seed

    def __len__(self) -> int:
        return len(self.indices)

    def item_name(self, base_index: int) -> str:
        """What an item is, for messages: its file, or its index."""
        name = getattr(self.base, "name", None)
        return name(base_index) if name else f"item {base_index}"

    def _read(self, idx: int):
        """(image, label, index of the unreadable image replaced or -1). An unreadable image is replaced by the next
        readable one of its class when the source knows its labels without reading (a file list), else by the next
        readable one."""
        img, label = self.base[self.indices[idx]]
        if img is not None:
            return img, label, -1
        labels = getattr(self.base, "labels", None)
        order = self.indices[idx + 1:] + self.indices[:idx]
        same = order if labels is None else [i for i in order if labels[i] == label]
        for i in same:
            img, label = self.base[i]
            if img is not None:
                return img, label, self.indices[idx]
        data = self.info.describe() if self.info else "the dataset"
        tried = set(same)
        if any(self.base[i][0] is not None for i in order if i not in tried):
            names = self.info.class_names if self.info else []
            which = f"'{names[label - self.label_offset]}'" if 0 <= label - self.label_offset < len(names) \
                else str(label)
            raise DataError(f"no image of class {which} in {data} can be read ({len(same) + 1} file(s), e.g. "
                            f"{self.item_name(self.indices[idx])}): replace them, or remove the class's folder")
        raise DataError(f"no image of {data} can be read")

    def __getitem__(self, key):
        tagged = isinstance(key, tuple)
        epoch, idx, *draw = key if tagged else (None, key)
        img, label, skipped = self._read(idx)
        if skipped >= 0 and not tagged:
            warnings.warn(f"unreadable image {self.item_name(skipped)} replaced by the next readable one of its class")
        if self.transform is not None and tagged:
            with seeded_transforms(sample_seed(self.seed, epoch, idx, *draw)):
                img = self.transform(np.asarray(img))
        elif self.transform is not None:
            img = self.transform(np.asarray(img))
        img = img.numpy() if hasattr(img, "numpy") else np.asarray(img)
        label = np.array([int(np.asarray(label).reshape(-1)[0]) - self.label_offset], "int64")
        if tagged:
            return img.astype("float32"), label, np.array([skipped], "int64")
        return img.astype("float32"), label


class ImageList:
    """Indexable (image uint8 HW[C], label) pairs from arrays or a file list (``loader`` reads one file; None when it
    cannot)."""

    def __init__(self, images: Any, labels: Sequence[int], loader: Optional[Callable] = None):
        self.images, self.labels, self.loader = images, list(labels), loader

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.loader(self.images[i]) if self.loader else self.images[i]
        return img, self.labels[i]

    def name(self, i: int) -> str:
        return str(self.images[i]) if self.loader else f"item {i}"


def read_whole_image(path: str) -> Optional[np.ndarray]:
    """The image at ``path``, or None when it is missing, truncated or cannot be decoded."""
    return None if file_problem(path) is not None else read_image(path)


class PaddleDatasetView:
    """An indexable view over one of Paddle's dataset objects (``base``), handing back our (uint8 image, label)."""

    def __init__(self, base):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)
