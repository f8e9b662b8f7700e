"""Flowers-102's archive, extracted once beside it (or, where that folder is read-only, into a cache that links to
it)."""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from typing import Optional

from ..files import user_cache

#: the three files of the Flowers-102 release that ``Data.root`` holds (Paddle's ``Flowers`` reads them)
FLOWERS_FILES = ("102flowers.tgz", "imagelabels.mat", "setid.mat")


def writable_flowers_root(root: str, cache_dir: Optional[str]) -> str:
    """``root``, or where it is read-only and not yet extracted, a cache folder linking to its three files."""
    if os.path.isdir(os.path.join(root, "102flowers", "jpg")) or os.access(root, os.W_OK):
        return root
    cache = os.path.join(cache_dir, "flowers102") if cache_dir else user_cache("flowers102")
    os.makedirs(cache, exist_ok=True)
    for name in FLOWERS_FILES:
        link = os.path.join(cache, name)
        if not os.path.exists(link):
            os.symlink(os.path.abspath(os.path.join(root, name)), link)
    return cache


def extract_flowers(root: str) -> None:
    """Extract ``102flowers.tgz`` into ``102flowers/jpg`` once, atomically: into a private folder first, then one
    rename. Paddle's ``Flowers`` would extract in place, so two runs started together read half-written files, and a
    run killed while extracting leaves a folder that looks complete. (Not ``files.staged_folder``: that replaces a
    folder, and here the first complete copy must stay, since another run may be reading it.)"""
    final = os.path.join(root, "102flowers", "jpg")
    if os.path.isdir(final):
        return
    os.makedirs(os.path.dirname(final), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".extracting-", dir=os.path.dirname(final))
    print(f"extracting Flowers-102 (8,189 images) to {final} (once)", flush=True)
    try:
        with tarfile.open(os.path.join(root, FLOWERS_FILES[0])) as tar:
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
