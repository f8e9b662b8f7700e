"""Time to open an ImageNet-layout image folder of 100,000 small files (#12): our lazy listing against decoding every
image at open (what the dataset did before: check each file's end marker and decode it).

    python docs/results/data/open_imagefolder.py [--classes 1000] [--per-class 100] [--root /tmp/imagefolder_100k]

Writes the folder once (the same 32x32 JPEG under every name), then times, in one process: build_dataset (Train
split) twice (cold-ish and warm page cache), and the old open (file_problem + read_image of every file) once.
"""
import argparse
import os
import platform
import time

import cv2
import numpy as np


def make(root, classes, per_class):
    jpg = cv2.imencode(".jpg", np.random.RandomState(0).randint(0, 255, (32, 32, 3), np.uint8))[1].tobytes()
    for split, n in (("train", per_class), ("val", 1)):
        for c in range(classes):
            d = os.path.join(root, split, f"n{c:08d}")
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                path = os.path.join(d, f"n{c:08d}_{i}.JPEG")
                if not os.path.exists(path):
                    with open(path, "wb") as f:
                        f.write(jpg)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--root", default="/tmp/imagefolder_100k")
    a = p.parse_args()
    make(a.root, a.classes, a.per_class)
    from edgevit_paddle.config import load_config
    from edgevit_paddle.data import build_dataset
    from edgevit_paddle.image import file_problem, read_image
    cfg = load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=imagefolder", f"Data.root={a.root}",
                             "Data.Eval.split=val"])
    for attempt in (1, 2):
        t0 = time.perf_counter()
        ds = build_dataset(cfg["Data"], "Train")
        print(f"lazy open, try {attempt}: {len(ds):,} images, {ds.info.num_classes} classes in "
              f"{time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    ok = sum(1 for f in ds.base.images if file_problem(f) is None and read_image(f) is not None)
    print(f"decoding every image at open (before): {ok:,} images in {time.perf_counter() - t0:.2f} s")
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
