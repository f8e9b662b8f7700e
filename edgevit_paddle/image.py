"""Image files to arrays: the one decoder that training data and the inference predictor share.

Both decode with OpenCV into uint8 RGB (or grey HW) and give images the model's channel count the same way, so that
training's eval pipeline and a deployed predictor see the same pixels. It imports nothing else of the package, so
``inference/`` can ship without ``data/`` or ``engine/``.
"""
from __future__ import annotations

import os
import warnings
from typing import Optional, Tuple

import cv2
import numpy as np
from PIL import Image

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")



def list_images(folder: str, linked: Optional[set] = None) -> list:
    """The image files under ``folder`` (recursively, by extension; hidden files and folders left out), sorted. By
    name only (``os.scandir``: nothing is opened, so 100,000 files list in well under a second). Linked folders are
    followed, each real folder once, except a link back to ``folder`` or above it (a loop, which would list the
    folders beside ``folder`` as its own). A folder that cannot be listed raises its ``OSError``. ``linked``, when
    given, receives the listed paths that are symbolic links or lie in a linked folder (those whose real place may be
    elsewhere; only they need ``os.path.realpath``)."""
    top = os.path.realpath(folder)
    out, stack, seen = [], [(folder, False)], set()
    while stack:
        path, via_link = stack.pop()
        real = os.path.realpath(path)
        if real in seen or (path != folder and (top + os.sep).startswith(real + os.sep)):
            continue
        seen.add(real)
        with os.scandir(path) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if _is_dir(entry):
                    stack.append((entry.path, via_link or entry.is_symlink()))
                elif entry.name.lower().endswith(IMG_EXTENSIONS):
                    out.append(entry.path)
                    if linked is not None and (via_link or entry.is_symlink()):
                        linked.add(entry.path)
    return sorted(out)


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link to itself (ELOOP): not a folder; listed by its name like any file, unreadable when read
        return False


#: how far from the end of a file its end marker may sit (some writers pad or append a few bytes after it)
_TAIL = 4096


def file_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a whole image file, before decoding it: missing, empty, unreadable, a JPEG/PNG cut short
    (OpenCV decodes a truncated JPEG with grey filling the missing part and only a warning), or more than
    ``MAX_PIXELS`` pixels (read from its header: a small file can decode to gigabytes); None when nothing is wrong."""
    if not os.path.exists(path):
        return "not found"
    if not os.path.isfile(path):
        return "not a file"
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        return "truncated JPEG (the file ends before the image does)"
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        return "truncated PNG (the file ends before the image does)"
    return _too_many_pixels(path)


#: the most pixels an image may have (PIL's decompression-bomb limit: 89.5 million, ~0.25 GB as RGB)
MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def _too_many_pixels(path: str) -> Optional[str]:
    """Its size from the header alone (PIL reads no pixel to answer) when over ``MAX_PIXELS``; formats PIL does not
    know are left to OpenCV."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return f"more than {MAX_PIXELS:,} pixels (a decompression bomb?); not decoded"
    except (OSError, ValueError, SyntaxError):  # PIL cannot read the header: OpenCV decides
        return None
    if w * h > MAX_PIXELS:
        return f"{w}x{h} is more than {MAX_PIXELS:,} pixels; not decoded"
    return None


def read_image(path: str) -> Optional[np.ndarray]:
    """Decode an image file to uint8 RGB (or grey HW) with OpenCV; None when it cannot be read."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        return None
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3:
        img = img[:, :, 0]
    return img


def to_channels(img: np.ndarray, channels: int = 3) -> np.ndarray:
    """An HW / HWC uint8 image as HWC with ``channels`` channels (grey -> RGB by copying, RGB(A) -> grey by the
    ITU-R 601 weights)."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.shape[2] == 4:
        img = img[:, :, :3]
    if img.shape[2] == channels:
        return img
    if channels == 3:
        return np.repeat(img, 3, axis=2)
    grey = img[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(grey), 0, 255).astype(img.dtype)[:, :, None]


#: PIL's filters by the names ``paddle.vision.transforms`` uses
PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "box": Image.BOX,
               "lanczos": Image.LANCZOS, "hamming": Image.HAMMING}


def to_pil(img: np.ndarray) -> Image.Image:
    """An HWC (or HW) uint8 array as a PIL image (one channel as mode ``L``)."""
    return Image.fromarray(img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img)


def from_pil(pil: Image.Image, like: np.ndarray) -> np.ndarray:
    """A PIL image back as an array of ``like``'s layout (HWC stays HWC with one channel)."""
    out = np.asarray(pil)
    return out[:, :, None] if like.ndim == 3 and out.ndim == 2 else out


def short_side_size(height: int, width: int, size: int, rounding: str = "paddleclas") -> Tuple[int, int]:
    """(height, width) after resizing the short side to ``size``, aspect kept. ``paddleclas`` (``ROUNDINGS``): both
    sides scaled by ``size / min(height, width)`` and rounded to the nearest pixel (Python's ``round``), as
    PaddleClas's and PaddleX's ``ResizeImage{resize_short}`` compute it; ``timm``: torchvision's ``resize``, the short
    side ``size`` and the long side truncated (one pixel shorter whenever its fraction is .5 or more, as Paddle's own
    ``Resize`` too). Training's ``Resize``, the predictor and ``inference.yml``'s readers all use this."""
    if rounding == "timm":
        return (size, int(size * width / height)) if height <= width else (int(size * height / width), size)
    scale = size / min(height, width)
    return round(height * scale), round(width * scale)


def center_crop_box(height: int, width: int, crop_h: int, crop_w: int, rounding: str = "paddleclas") -> Tuple[int, int]:
    """(top, left) of a centred ``crop_h`` x ``crop_w`` crop. ``paddleclas``: the offsets rounded down, as
    PaddleClas's and PaddleX's ``CropImage`` place it; ``timm``: rounded (``round``), as torchvision's
    ``center_crop`` (and Paddle's ``CenterCrop``)."""
    if rounding == "timm":
        return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))
    return (height - crop_h) // 2, (width - crop_w) // 2


def resize_antialiased(img: np.ndarray, height: int, width: int, interpolation: str = "bicubic") -> np.ndarray:
    """Resize with PIL, whose filters widen with the scale when shrinking (an antialiased resize, as timm's and
    torchvision's PIL transforms do); OpenCV's ``INTER_CUBIC`` samples 4x4 pixels whatever the scale (aliasing)."""
    return from_pil(to_pil(img).resize((int(width), int(height)), PIL_FILTERS[interpolation]), img)
