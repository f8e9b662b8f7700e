"""A run's folder: its name, the lock that keeps a second process out of it, the files it starts with, and finding
it again (``--resume``, ``--resume auto``).

``<output_dir>/<run_name>/`` holds ``config.yaml`` (the resolved config), ``labels.txt`` (class names),
``train.log``, ``metrics.json``, ``checkpoints/`` (``CheckpointSaver``'s), ``vdl/`` (VisualDL) and ``.lock``.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence

from ..config import dump_config, load_config
from ..errors import ConfigError, MissingFileError, TrainingError
from ..files import Busy, exclusive, write_text_atomic
from .checkpoint_saver import LATEST, read_latest

LOCK = ".lock"


def default_run_name(cfg: Dict[str, Any]) -> str:
    """The config file's name without extension (``quickstart``), else the model's name."""
    src = cfg.get("__source__")
    return os.path.splitext(os.path.basename(src))[0] if src else cfg["Model"]["name"]


def new_run_dir(cfg: Dict[str, Any]) -> str:
    """``output_dir/run_name``, or ``run_name-2``, ``-3``... when that already holds a run (nothing is
    overwritten)."""
    g = cfg["Global"]
    name = g["run_name"] or default_run_name(cfg)
    if os.path.isabs(name) or os.sep in name or (os.altsep and os.altsep in name) or name in (".", ".."):
        raise ConfigError(f"Global.run_name '{name}' must be a folder name, not a path (it goes inside "
                          "Global.output_dir): set Global.output_dir for where runs go")
    if os.path.exists(g["output_dir"]) and not os.path.isdir(g["output_dir"]):
        raise ConfigError(f"Global.output_dir '{g['output_dir']}' is a file: give a folder")
    path = os.path.join(g["output_dir"], name)
    n = 1
    while os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        n += 1
        path = os.path.join(g["output_dir"], f"{name}-{n}")
    return path


@contextlib.contextmanager
def locked(run_dir: str) -> Iterator[None]:
    """Hold ``<run>/.lock`` (with the owner's PID in it) while a run writes the folder: a second training or resume of
    the same run is refused instead of mixing its checkpoints with the first's."""
    os.makedirs(run_dir, exist_ok=True)
    try:
        with exclusive(os.path.join(run_dir, LOCK), wait=False):
            yield
    except Busy as e:
        raise TrainingError(f"run folder '{run_dir}' is in use by process {e.holder} (a training or resume of this "
                            "run): wait for it to end or stop it; two processes must not write one run") from None


def write_run_files(run_dir: str, cfg: Dict[str, Any], class_names: List[str]) -> None:
    """The run's ``config.yaml`` (what it actually used) and ``labels.txt`` (a class name per line)."""
    dump_config(cfg, os.path.join(run_dir, "config.yaml"))
    write_text_atomic(os.path.join(run_dir, "labels.txt"), "\n".join(class_names) + "\n")


def load_run_config(path: Optional[str], overrides: Sequence[str], resume: Optional[str]) -> Dict[str, Any]:
    """The config to train with: ``-c`` (default quickstart), or on resume the run's own ``config.yaml``."""
    if resume and not path:
        path = os.path.join(resume, "config.yaml")
        if not os.path.isfile(path):
            raise MissingFileError(f"'{resume}' is not a run folder (no config.yaml): give the folder "
                                   "tools/train.py printed, e.g. --resume output/quickstart")
    return load_config(path, overrides)


def resolve_resume(resume: Optional[str], config_path: Optional[str], overrides: Sequence[str]) -> Optional[str]:
    """``--resume auto``: the newest run of this config's run name under ``Global.output_dir``: the one whose last
    checkpoint (or, for a run stopped in its first epoch, whose ``config.yaml``) was written last."""
    if resume != "auto":
        return resume
    cfg = load_config(config_path, overrides)
    name = cfg["Global"]["run_name"] or default_run_name(cfg)
    out = cfg["Global"]["output_dir"]
    written = {}
    for d in os.listdir(out) if os.path.isdir(out) else []:
        if d == name or d.startswith(name + "-"):
            run = os.path.join(out, d)
            marker = os.path.join(run, "checkpoints", LATEST) if read_latest(os.path.join(run, "checkpoints")) \
                else os.path.join(run, "config.yaml")
            if os.path.isfile(marker):
                written[run] = os.path.getmtime(marker)
    if not written:
        raise MissingFileError(f"--resume auto found no run of '{name}' in '{out}'")
    return max(written, key=written.get)
