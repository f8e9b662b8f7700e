"""Datasets from config, all readable offline from local files.

Paddle's own classes are used wherever they exist (``Flowers``, ``MNIST``, ``Cifar10``/``Cifar100``), always with
``download=False`` and the OpenCV backend; image folders are listed by our own lazy folder (one directory scan,
nothing decoded, unreadable images replaced and reported); a missing file is an error at open that
says which files to put where. Every dataset yields ``(image float32 CHW, label int64 [1])`` with 0-based labels.

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
  next readable one, and listed once per epoch by the trainer. An empty class folder, or a class missing from one
  split, is an error at open.
"""
from __future__ import annotations

import contextlib
import os
import random
import shutil
import tarfile
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
from paddle.io import Dataset

from ..errors import DataError
from ..image import IMG_EXTENSIONS, file_problem, read_image
from .flowers102_names import FLOWERS102_CLASSES
from .transforms import build_transforms, default_transforms

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


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


def sample_seed(seed: int, epoch: int, index: int, *draw: int) -> int:
    """The seed of one sample's random transforms: a function of (run seed, absolute epoch, sample index, and which
    draw of that sample in the epoch) only."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index, *draw]).generate_state(1)[0])


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of an epoch's model randomness (dropout, drop path): a function of (run seed, absolute epoch)."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_transforms(seed: int):
    """Python's ``random`` and NumPy's global generator (what ``paddle.vision.transforms`` draws from) seeded for one
    sample, and given back as they were."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


class LabeledDataset(Dataset):
    """Wraps a dataset (or arrays) so that items are ``(transform(image), int64 [1] label - label_offset)``.

    ``ds[(epoch, i, draw)]`` (what the training loader's sampler asks for) applies the transforms with their random
    draws seeded by ``(seed, epoch, i, draw)``, so a resumed run, in any process or loader worker, sees exactly the
    augmented images the uninterrupted run saw (``draw`` tells apart the copies of one image that repeated
    augmentation puts in an epoch), and adds a third field: the index of an unreadable image that was replaced by the
    next readable one, else -1 (the trainer lists them once per epoch). ``ds[i]`` leaves the generators alone (eval
    transforms draw nothing) and warns about an unreadable image it replaces.
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
        """(image, label, index of the unreadable image replaced or -1)."""
        img, label = self.base[self.indices[idx]]
        if img is not None:
            return img, label, -1
        for step in range(1, len(self.indices)):
            img, label = self.base[self.indices[(idx + step) % len(self.indices)]]
            if img is not None:
                return img, label, self.indices[idx]
        raise DataError(f"no image of {self.info.describe() if self.info else 'the dataset'} can be read")

    def __getitem__(self, key):
        tagged = isinstance(key, tuple)
        epoch, idx, *draw = key if tagged else (None, key)
        img, label, skipped = self._read(idx)
        if skipped >= 0 and not tagged:
            warnings.warn(f"unreadable image {self.item_name(skipped)} replaced by the next readable one")
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


class _RawDataset:
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


def _read_whole_image(path: str) -> Optional[np.ndarray]:
    """The image at ``path``, or None when it is missing, truncated or cannot be decoded."""
    return None if file_problem(path) is not None else read_image(path)


def _seeded_split(n: int, fraction: float, seed: int, split: str, labels: Optional[Sequence[int]] = None):
    if not 0.0 < fraction < 1.0:
        raise DataError(f"Data.train_fraction must be between 0 and 1 (exclusive), got {fraction}")
    perm = np.random.RandomState(seed).permutation(n)
    cut = int(round(n * fraction))
    if split == "train":
        return sorted(perm[:cut].tolist())
    if split in ("test", "val", "valid", "eval"):
        return sorted(perm[cut:].tolist())
    raise DataError(f"unknown split '{split}' for a seeded split: use 'train' or 'test'")


def _require(root: Optional[str], files: Sequence[str], what: str, example: str) -> str:
    if not root:
        raise DataError(f"{what} needs Data.root: the folder with {', '.join(files)} (e.g. -o Data.root={example}); "
                        "nothing is downloaded")
    missing = [f for f in files if not os.path.isfile(os.path.join(root, f))]
    if missing:
        raise DataError(f"{what} files not found in '{root}': put {', '.join(missing)} there "
                        f"(e.g. -o Data.root={example}); nothing is downloaded")
    return root


def _digits(cfg: Dict[str, Any], split: str, transform):
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    idx = _seeded_split(len(images), cfg["train_fraction"], cfg["split_seed"], split)
    info = DatasetInfo("digits (scikit-learn, 8x8)", split, len(idx), 10, [str(i) for i in range(10)],
                       f"seeded split {cfg['train_fraction']:.0%}/{1 - cfg['train_fraction']:.0%} of 1,797 "
                       f"(seed {cfg['split_seed']})")
    return LabeledDataset(_RawDataset(images, digits.target.tolist()), idx, transform, 0, info)


def _mnist(cfg: Dict[str, Any], split: str, transform):
    from paddle.vision.datasets import MNIST
    root = cfg["root"]
    test_files = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    train_files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    _require(root, test_files, "MNIST", "../shared/data/mnist")
    names = [str(i) for i in range(10)]
    have_train = all(os.path.isfile(os.path.join(root, f)) for f in train_files)
    if have_train:
        files = train_files if split == "train" else test_files
        base = MNIST(os.path.join(root, files[0]), os.path.join(root, files[1]), mode="train" if split == "train"
                     else "test", download=False, backend="cv2")
        info = DatasetInfo("MNIST", split, len(base), 10, names, "official split")
        return LabeledDataset(base, None, transform, 0, info)
    base = MNIST(os.path.join(root, test_files[0]), os.path.join(root, test_files[1]), mode="test", download=False,
                 backend="cv2")
    raw = _RawDataset([np.asarray(im).reshape(28, 28).astype(np.uint8) for im in base.images],
                      [int(np.asarray(lbl).reshape(-1)[0]) for lbl in base.labels])
    idx = _seeded_split(len(raw), cfg["train_fraction"], cfg["split_seed"], split)
    info = DatasetInfo("MNIST", split, len(idx), 10, names,
                       f"seeded {cfg['train_fraction']:.0%}/{1 - cfg['train_fraction']:.0%} split of the 10,000-image "
                       f"test set (seed {cfg['split_seed']}): only the test set is available")
    return LabeledDataset(raw, idx, transform, 0, info)


def _writable_flowers_root(root: str, cache_dir: Optional[str]) -> str:
    if os.path.isdir(os.path.join(root, "102flowers", "jpg")) or os.access(root, os.W_OK):
        return root
    cache = os.path.join(cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "edgevit_paddle"), "flowers102")
    os.makedirs(cache, exist_ok=True)
    for name in ("102flowers.tgz", "imagelabels.mat", "setid.mat"):
        link = os.path.join(cache, name)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(os.path.join(root, name)), link)
    return cache


def _extract_flowers(root: str) -> None:
    """Extract ``102flowers.tgz`` into ``102flowers/jpg`` once, atomically: into a private folder first, then one
    rename. Paddle's ``Flowers`` would extract in place, so two runs started together read half-written files, and a
    run killed while extracting leaves a folder that looks complete."""
    final = os.path.join(root, "102flowers", "jpg")
    if os.path.isdir(final):
        return
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".extracting-", dir=os.path.dirname(final))
    print(f"extracting Flowers-102 (8,189 images) to {final} (once)", flush=True)
    try:
        with tarfile.open(os.path.join(root, "102flowers.tgz")) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.9.17 / 3.10.12 / 3.11.4: refuse unsafe members
                tar.extractall(tmp, filter="data")
            else:
                tar.extractall(tmp)
        try:
            os.rename(os.path.join(tmp, "jpg"), final)
        except OSError:
            if not os.path.isdir(final):  # not a lost race with another process: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _flowers(cfg: Dict[str, Any], split: str, transform):
    from paddle.vision.datasets import Flowers
    files = ["102flowers.tgz", "imagelabels.mat", "setid.mat"]
    root = _require(cfg["root"], files, "Flowers-102", "../shared/data/flowers102")
    if split not in ("train", "valid", "test"):
        raise DataError(f"unknown Flowers-102 split '{split}'; valid: train (6,149 images), valid (1,020), "
                        "test (1,020)")
    root = _writable_flowers_root(root, cfg["cache_dir"])
    _extract_flowers(root)
    base = Flowers(*(os.path.join(root, f) for f in files), mode=split, download=False, backend="cv2")
    jpg = os.path.join(base.data_path, "jpg")
    found = sum(1 for f in os.listdir(jpg) if f.endswith(".jpg"))
    if found < len(base.labels):
        raise DataError(f"'{jpg}' holds {found:,} of the {len(base.labels):,} Flowers-102 images (an extraction was "
                        f"cut short): delete '{os.path.dirname(jpg)}' so it is extracted again")
    names = list(FLOWERS102_CLASSES)
    info = DatasetInfo("Flowers-102", split, len(base), 102, names,
                       "Paddle's split (train = the original tstid 6,149; test = trnid 1,020); labels 1..102 -> 0..101")
    return LabeledDataset(_FlowersRGB(base), None, transform, 1, info)


class _Wrapped:
    """Indexable view over one of Paddle's dataset objects."""

    def __init__(self, base):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)


class _FlowersRGB(_Wrapped):
    """Paddle's Flowers index and labels, images decoded with OpenCV (``read_image``) like every other dataset here
    and like the inference predictor, so that training's eval pipeline and the predictor see the same pixels."""

    def __getitem__(self, i: int):
        index = int(self.base.indexes[i])
        img = read_image(os.path.join(self.base.data_path, "jpg", f"image_{index:05}.jpg"))
        if img is None:
            raise DataError(f"cannot read Flowers-102 image {index} in {self.base.data_path}: delete that folder "
                            "so it is extracted again")
        return img, int(self.base.labels[index - 1])


def _cifar(cfg: Dict[str, Any], split: str, transform, which: str):
    from paddle.vision.datasets import Cifar10, Cifar100
    fname = f"cifar-{which[5:]}-python.tar.gz"
    root = _require(cfg["root"], [fname], which.upper(), "/path/to/cifar")
    if split not in ("train", "test"):
        raise DataError(f"unknown {which} split '{split}'; valid: train, test")
    cls = Cifar10 if which == "cifar10" else Cifar100
    base = cls(os.path.join(root, fname), mode=split, download=False, backend="cv2")
    n = 10 if which == "cifar10" else 100
    names = CIFAR10_CLASSES if n == 10 else [str(i) for i in range(n)]
    info = DatasetInfo(which.upper(), split, len(base), n, names, "official split")
    return LabeledDataset(_CifarRGB(base), None, transform, 0, info)


class _CifarRGB(_Wrapped):
    """Paddle's Cifar (cv2 backend) yields CHW-flattened rows: hand back HWC uint8."""

    def __getitem__(self, i: int):
        img, label = self.base.data[i]
        return np.reshape(img, [3, 32, 32]).transpose([1, 2, 0]).astype(np.uint8), label


def _class_dirs(path: str) -> List[str]:
    return sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith("."))


def _imagefolder(cfg: Dict[str, Any], split: str, transform):
    root = cfg["root"]
    if not root or not os.path.isdir(root):
        raise DataError(f"image folder '{root}' not found: set Data.root to a folder with train/<class>/... and "
                        "val/<class>/...")
    if split == "test" and not os.path.isdir(os.path.join(root, "test")):
        split = "val"  # the default eval split; ImageNet's layout names it val
    path = os.path.join(root, split)
    if not os.path.isdir(path):
        have = ", ".join(_class_dirs(root)) or "nothing"
        raise DataError(f"image folder split '{split}' not found: expected '{path}' with one subfolder per class "
                        f"(found: {have}); set Data.Train.split / Data.Eval.split")
    classes = _class_dirs(path)
    if not classes:
        raise DataError(f"no class folders in '{path}': expected {path}/<class>/<image>")
    other = "val" if split == "train" else "train"
    other_path = os.path.join(root, other)
    if os.path.isdir(other_path):
        other_classes = _class_dirs(other_path)
        if set(other_classes) != set(classes):
            diff = sorted(set(classes) ^ set(other_classes))
            raise DataError(f"classes differ between '{split}' and '{other}' in '{root}': {', '.join(diff)} "
                            "present in only one; every class needs a folder in both")
    files, labels, empty = [], [], []
    for label, cls in enumerate(classes):
        found = _list_images(os.path.join(path, cls))
        if not found:
            empty.append(cls)
        files += found
        labels += [label] * len(found)
    if empty:
        raise DataError(f"empty class folder(s) in '{path}': {', '.join(empty)}; add images or remove the folder")
    info = DatasetInfo(f"image folder {root}", split, len(files), len(classes), classes)
    return LabeledDataset(_RawDataset(files, labels, _read_whole_image), None, transform, 0, info)


def _list_images(folder: str) -> List[str]:
    """The image files under ``folder`` (recursively), sorted; by name only (``os.scandir``: nothing is opened)."""
    out, stack = [], [folder]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir():
                    stack.append(entry.path)
                elif entry.name.lower().endswith(IMG_EXTENSIONS):
                    out.append(entry.path)
    return sorted(out)


_BUILDERS = {
    "digits": _digits,
    "mnist": _mnist,
    "flowers102": _flowers,
    "cifar10": lambda cfg, split, t: _cifar(cfg, split, t, "cifar10"),
    "cifar100": lambda cfg, split, t: _cifar(cfg, split, t, "cifar100"),
    "imagefolder": _imagefolder,
}


def class_names(data_cfg: Dict[str, Any]) -> List[str]:
    """The class names of the configured dataset without loading it (image folders: the train split's folders)."""
    name = data_cfg["dataset"]
    if name in ("digits", "mnist"):
        return [str(i) for i in range(10)]
    if name == "flowers102":
        return list(FLOWERS102_CLASSES)
    if name == "cifar10":
        return list(CIFAR10_CLASSES)
    if name == "cifar100":
        return [str(i) for i in range(100)]
    path = os.path.join(data_cfg["root"] or "", data_cfg["Train"]["split"])
    if not os.path.isdir(path):
        raise DataError(f"image folder '{path}' not found: set Data.root, or export from a training run's "
                        "checkpoint (its labels.txt holds the class names)")
    return _class_dirs(path)


def transforms_spec(data_cfg: Dict[str, Any], split_section: str) -> List[Dict[str, Any]]:
    """The transforms ``Data.<split_section>`` uses: its own list, else the defaults for the dataset (digit sets are
    normalised to [-1, 1] and not flipped)."""
    spec = data_cfg[split_section]["transforms"]
    if spec is not None:
        return spec
    grey = data_cfg["dataset"] in ("digits", "mnist")
    mean_std = ([0.5] * data_cfg["channels"], [0.5] * data_cfg["channels"]) if grey else ()
    return default_transforms(data_cfg["image_size"], split_section == "Train", *mean_std, flip=not grey)


def eval_transforms(data_cfg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The eval transforms of a ``Data`` config (what an exported model's preprocessing must reproduce)."""
    return transforms_spec(data_cfg, "Eval")


def build_dataset(data_cfg: Dict[str, Any], split_section: str) -> LabeledDataset:
    """The dataset of ``Data.<split_section>`` (``"Train"`` or ``"Eval"``) with its transforms."""
    section = data_cfg[split_section]
    transform = build_transforms(transforms_spec(data_cfg, split_section), data_cfg["channels"],
                                 f"Data.{split_section}.transforms")
    ds = _BUILDERS[data_cfg["dataset"]](data_cfg, section["split"], transform)
    limit = section.get("max_samples")
    if limit and limit < len(ds):  # a seeded subset, for quick experiments and smoke tests
        keep = np.random.RandomState(data_cfg["split_seed"]).permutation(len(ds))[:limit]
        ds.indices = [ds.indices[i] for i in sorted(keep)]
        ds.info.num_samples = len(ds.indices)
        ds.info.note = (ds.info.note + "; " if ds.info.note else "") + f"first {limit} of a seeded shuffle"
    return ds
