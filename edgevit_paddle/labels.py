"""Class-name files: one name per line, in class-id order (a run's ``labels.txt``, ``Infer.label_file``,
``tools/infer.py --labels``). Image-folder datasets take their names from their class folders."""
from __future__ import annotations

import os
from typing import List, Optional

from .errors import InputError, MissingFileError


def read_labels(path: Optional[str], required: bool = True) -> List[str]:
    """The class names in ``path``; with ``required`` a missing or empty file is a one-line error, else ``[]``."""
    if not path or not os.path.isfile(path):
        if required and path:
            raise MissingFileError(f"label file '{path}' not found: give a text file with one class name per line, "
                                   "in class-id order (a training run writes one: <run>/labels.txt)")
        return []
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if required and not names:
        raise InputError(f"label file '{path}' is empty: one class name per line, in class-id order")
    return names
