"""Random erasing as timm implements it for DeiT and the EdgeViT authors (``--reprob 0.25 --remode pixel
--recount 1``), applied after ``Normalize``: with probability ``prob`` one box of 2%..33% of the image, aspect ratio
log-uniform in [0.3, 3.3], is filled with per-pixel normal noise (``mode: pixel``), one random colour per channel
(``rand``) or zeros (``const``).

Paddle's ``RandomErasing`` draws the noise of a tensor image from Paddle's generator, which a resumed run cannot
replay; this one draws everything from Python's ``random`` and NumPy's global generator, which the datasets seed per
sample.
"""
from __future__ import annotations

import math
import random

import numpy as np

from ..errors import ConfigError


class TimmRandomErasing:
    def __init__(self, prob: float = 0.25, mode: str = "pixel", min_area: float = 0.02, max_area: float = 1 / 3,
                 min_aspect: float = 0.3, max_count: int = 1):
        if mode not in ("pixel", "rand", "const"):
            raise ConfigError(f"TimmRandomErasing mode '{mode}'; valid: pixel, rand, const")
        self.prob, self.mode, self.max_count = float(prob), mode, int(max_count)
        self.min_area, self.max_area = float(min_area), float(max_area)
        self.log_ratio = (math.log(min_aspect), math.log(1.0 / min_aspect))

    def __call__(self, img):
        arr = np.array(img.numpy() if hasattr(img, "numpy") else img, dtype=np.float32)  # CHW, normalised
        if random.random() > self.prob:
            return arr
        c, h, w = arr.shape
        count = 1 if self.max_count == 1 else random.randint(1, self.max_count)
        for _ in range(count):
            for _attempt in range(10):
                area = random.uniform(self.min_area, self.max_area) * h * w / count
                aspect = math.exp(random.uniform(*self.log_ratio))
                eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
                if ew < w and eh < h:
                    top, left = random.randint(0, h - eh), random.randint(0, w - ew)
                    if self.mode == "pixel":
                        fill = np.random.standard_normal((c, eh, ew))
                    elif self.mode == "rand":
                        fill = np.random.standard_normal((c, 1, 1))
                    else:
                        fill = np.zeros((c, 1, 1))
                    arr[:, top:top + eh, left:left + ew] = fill
                    break
        return arr

    def __repr__(self) -> str:
        return f"TimmRandomErasing(prob={self.prob}, mode={self.mode})"
