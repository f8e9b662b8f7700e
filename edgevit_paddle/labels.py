"""Class-name files: one name per line, in class-id order (a run's ``labels.txt``, ``Infer.label_file``,
``tools/infer.py --labels``). Image-folder datasets take their names from their class folders."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

from .errors import InputError, MissingFileError


def read_labels(path: Optional[str], required: bool = True) -> List[str]:
    """The class names in ``path``; with ``required`` a missing or empty file is a one-line error, else ``[]``."""
    if not path or not os.path.isfile(path):
        if required and path:
            raise MissingFileError(f"label file '{path}' not found: give a text file with one class name per line, "
                                   "in class-id order (a training run writes one: <run>/labels.txt)")
        return []
    try:
        with open(path, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise InputError(f"label file '{path}' is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}): "
                         "save it as UTF-8, one class name per line") from None
    if required and not names:
        raise InputError(f"label file '{path}' is empty: one class name per line, in class-id order")
    return names


def label_map(class_names: Sequence[str]) -> str:
    """PaddleClas's label map file (``label_list.txt``, ``Topk.class_id_map_file``): ``<id> <name>`` per line."""
    return "".join(f"{i} {name}\n" for i, name in enumerate(class_names))


def parse_label_map(text: str) -> List[str]:
    """The class names of a ``label_map`` text, in id order; ids that are not 0, 1, 2... raise ``ValueError``."""
    names = []
    for n, line in enumerate(ln for ln in text.split("\n") if ln.strip()):
        cid, _, name = line.partition(" ")
        if cid != str(n):
            raise ValueError(f"line {n + 1} starts with '{cid[:20]}', not the class id {n}")
        names.append(name)
    return names
