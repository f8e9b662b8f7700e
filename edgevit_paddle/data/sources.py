"""Where each dataset's images come from: one ``Source`` per ``Data.dataset`` name, the one list of them (the config
check, the transforms' defaults and the exported label map all read ``SOURCES``).

Paddle's own classes are used wherever they exist (``Flowers``, ``MNIST``, ``Cifar10``/``Cifar100``), always with
``download=False`` and the OpenCV backend; image folders are listed by name (``image.list_images``); a missing file is
an error at open that says which files to put where.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ..errors import DataError, first_line, raised_in_our_code
from ..image import list_images, read_image
from .archive import FLOWERS_FILES, extract_flowers, writable_flowers_root
from .flowers102_names import FLOWERS102_CLASSES
from .labeled import DatasetInfo, ImageList, LabeledDataset, PaddleDatasetView, read_whole_image

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = [str(i) for i in range(100)]  # numbered, as Paddle's Cifar100 labels them
DIGIT_CLASSES = [str(i) for i in range(10)]


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


@contextlib.contextmanager
def _damaged(root: str, files: Sequence[str], what: str):
    """What Paddle's dataset classes (and the archive and .mat readers under them) raise for a truncated, garbled or
    unsafe file, as one line naming the files and the fix."""
    import struct
    import tarfile
    import zlib

    from scipy.io.matlab import MatReadError
    try:
        yield
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, zlib.error, struct.error, tarfile.TarError,
            MatReadError) as e:
        if isinstance(e, DataError) or raised_in_our_code(e):  # ours: a user error said already, or a bug
            raise
        why = "an archive member that would land outside its folder" if isinstance(e, tarfile.FilterError) else \
            f"{type(e).__name__}: {first_line(e, 100)}"
        raise DataError(f"cannot read the {what} files {', '.join(files)} in '{root}' ({why}): they are damaged or "
                        "not the originals; replace them with intact copies") from None


def _digits(cfg: Dict[str, Any], split: str, transform):
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.clip(np.rint(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    idx = _seeded_split(len(images), cfg["train_fraction"], cfg["split_seed"], split)
    info = DatasetInfo("digits (scikit-learn, 8x8)", split, len(idx), 10, DIGIT_CLASSES,
                       f"seeded split {cfg['train_fraction']:.0%}/{1 - cfg['train_fraction']:.0%} of 1,797 "
                       f"(seed {cfg['split_seed']})")
    return LabeledDataset(ImageList(images, digits.target.tolist()), idx, transform, 0, info)


def _mnist(cfg: Dict[str, Any], split: str, transform):
    from paddle.vision.datasets import MNIST
    root = cfg["root"]
    test_files = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    train_files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    _require(root, test_files, "MNIST", "../shared/data/mnist")
    names = DIGIT_CLASSES
    have_train = all(os.path.isfile(os.path.join(root, f)) for f in train_files)
    if have_train:
        files = train_files if split == "train" else test_files
        with _damaged(root, files, "MNIST"):
            base = MNIST(os.path.join(root, files[0]), os.path.join(root, files[1]),
                         mode="train" if split == "train" else "test", download=False, backend="cv2")
        info = DatasetInfo("MNIST", split, len(base), 10, names, "official split")
        return LabeledDataset(base, None, transform, 0, info)
    with _damaged(root, test_files, "MNIST"):
        base = MNIST(os.path.join(root, test_files[0]), os.path.join(root, test_files[1]), mode="test",
                     download=False, backend="cv2")
    raw = ImageList([np.asarray(im).reshape(28, 28).astype(np.uint8) for im in base.images],
                      [int(np.asarray(lbl).reshape(-1)[0]) for lbl in base.labels])
    idx = _seeded_split(len(raw), cfg["train_fraction"], cfg["split_seed"], split)
    info = DatasetInfo("MNIST", split, len(idx), 10, names,
                       f"seeded {cfg['train_fraction']:.0%}/{1 - cfg['train_fraction']:.0%} split of the 10,000-image "
                       f"test set (seed {cfg['split_seed']}): only the test set is available")
    return LabeledDataset(raw, idx, transform, 0, info)


def _flowers(cfg: Dict[str, Any], split: str, transform):
    from paddle.vision.datasets import Flowers
    files = list(FLOWERS_FILES)
    root = _require(cfg["root"], files, "Flowers-102", "../shared/data/flowers102")
    if split not in ("train", "valid", "test"):
        raise DataError(f"unknown Flowers-102 split '{split}'; valid: train (6,149 images), valid (1,020), "
                        "test (1,020)")
    root = writable_flowers_root(root, cfg["cache_dir"])
    with _damaged(root, files[:1], "Flowers-102"):
        extract_flowers(root)
    with _damaged(root, files[1:], "Flowers-102"):
        base = Flowers(*(os.path.join(root, f) for f in files), mode=split, download=False, backend="cv2")
    jpg = os.path.join(base.data_path, "jpg")
    found = sum(1 for f in os.listdir(jpg) if f.endswith(".jpg"))
    if found < len(base.labels):
        raise DataError(f"'{jpg}' holds {found:,} of the {len(base.labels):,} Flowers-102 images (an extraction was "
                        f"cut short): delete '{os.path.dirname(jpg)}' so it is extracted again")
    info = DatasetInfo("Flowers-102", split, len(base), 102, list(FLOWERS102_CLASSES),
                       "Paddle's split (train = the original tstid 6,149; test = trnid 1,020); labels 1..102 -> 0..101")
    return LabeledDataset(_FlowersRGB(base), None, transform, 1, info)


class _FlowersRGB(PaddleDatasetView):
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
    names = CIFAR10_CLASSES if n == 10 else CIFAR100_CLASSES
    info = DatasetInfo(which.upper(), split, len(base), n, names, "official split")
    return LabeledDataset(_CifarRGB(base), None, transform, 0, info)


class _CifarRGB(PaddleDatasetView):
    """Paddle's Cifar (cv2 backend) yields CHW-flattened rows: hand back HWC uint8."""

    def __getitem__(self, i: int):
        img, label = self.base.data[i]
        return np.reshape(img, [3, 32, 32]).transpose([1, 2, 0]).astype(np.uint8), label


def class_dirs(path: str) -> List[str]:
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
        have = ", ".join(class_dirs(root)) or "nothing"
        raise DataError(f"image folder split '{split}' not found: expected '{path}' with one subfolder per class "
                        f"(found: {have}); set Data.Train.split / Data.Eval.split")
    classes = class_dirs(path)
    if not classes:
        raise DataError(f"no class folders in '{path}': expected {path}/<class>/<image>")
    other = "val" if split == "train" else "train"
    other_path = os.path.join(root, other)
    if os.path.isdir(other_path):
        other_classes = class_dirs(other_path)
        if set(other_classes) != set(classes):
            diff = sorted(set(classes) ^ set(other_classes))
            raise DataError(f"classes differ between '{split}' and '{other}' in '{root}': {', '.join(diff)} "
                            "present in only one; every class needs a folder in both")
    files, labels, empty, elsewhere = [], [], [], []
    owner = _class_owner(path, classes)
    for label, cls in enumerate(classes):
        linked: set = set()
        try:
            found = list_images(os.path.join(path, cls), linked)
        except OSError as e:
            raise DataError(f"cannot list '{e.filename or os.path.join(path, cls)}' ({e.strerror or e}): make it "
                            "readable, or remove it") from None
        kept, seen = [], set()
        for f in found:
            real = os.path.realpath(f) if f in linked else f
            other = owner(real) if f in linked else label
            if other is not None and other != label:  # listed under its real class already
                elsewhere.append(f"{os.path.relpath(f, path)} -> {classes[other]}")
            elif real not in seen:  # two links to one image in a class: once
                seen.add(real)
                kept.append(f)
        if not kept:
            empty.append(cls)
        files += kept
        labels += [label] * len(kept)
    if elsewhere:
        more = " ..." if len(elsewhere) > 5 else ""
        warnings.warn(f"{len(elsewhere)} linked image(s) in '{path}' resolve inside another class's folder and are "
                      f"listed once, under that class: {', '.join(elsewhere[:5])}{more}")
    if empty:
        raise DataError(f"empty class folder(s) in '{path}': {', '.join(empty)}; add images or remove the folder")
    info = DatasetInfo(f"image folder {root}", split, len(files), len(classes), classes)
    return LabeledDataset(ImageList(files, labels, read_whole_image), None, transform, 0, info)


def _class_owner(split_path: str, classes: Sequence[str]) -> Callable[[str], Optional[int]]:
    """``owner(real_path)``: the index of the class whose (real) folder holds ``real_path``, None for none."""
    folders = sorted(((os.path.realpath(os.path.join(split_path, c)) + os.sep, i) for i, c in enumerate(classes)),
                     key=lambda fi: -len(fi[0]))

    def owner(real_path: str) -> Optional[int]:
        return next((i for folder, i in folders if real_path.startswith(folder)), None)
    return owner


@dataclass(frozen=True)
class Source:
    """One ``Data.dataset``: ``build(data_cfg, split, transform) -> LabeledDataset``; its class names (None: read from
    the data, as an image folder's); ``grey``: single-channel digits, whose default transforms normalise to [-1, 1]
    and do not flip."""

    build: Callable[[Dict[str, Any], str, Optional[Callable]], LabeledDataset]
    classes: Optional[List[str]] = None
    grey: bool = False


SOURCES: Dict[str, Source] = {
    "digits": Source(_digits, DIGIT_CLASSES, grey=True),
    "mnist": Source(_mnist, DIGIT_CLASSES, grey=True),
    "flowers102": Source(_flowers, list(FLOWERS102_CLASSES)),
    "cifar10": Source(lambda cfg, split, t: _cifar(cfg, split, t, "cifar10"), CIFAR10_CLASSES),
    "cifar100": Source(lambda cfg, split, t: _cifar(cfg, split, t, "cifar100"), CIFAR100_CLASSES),
    "imagefolder": Source(_imagefolder),
}
