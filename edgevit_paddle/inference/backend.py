"""What every backend declares about itself (``Backend``), and the messages they share.

A backend is one class: its ``name``, the ``precisions`` it runs on each device, the model-folder ``files`` it reads
for each precision, the Python module its library is (``available()``), the exceptions that library raises for a
damaged file or an input the model does not take (``library_errors()``), its ``rank`` for ``auto`` on each device,
the options only it honours and its benchmark group. ``backends.BACKENDS`` lists them; everything else (the option
checks, ``auto``, the CLI help, the benchmark modes, ``precision_agreement``'s reference) is read off that table.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import PredictorError, first_line
from . import model_folder
from .options import PredictorOptions


class Backend:
    """One way of running an exported model. Subclasses set the class attributes and implement ``load`` and
    ``run``; construct them as ``cls(model_dir, opts, input_size)``."""

    #: the ``--backend`` name
    name: str = ""
    #: one line for ``--help``
    summary: str = ""
    #: the Python module that is its library (``available()``), and the package that provides it (pip name)
    module: str = ""
    package: str = ""
    #: device -> the precisions it runs there
    precisions: Mapping[str, Tuple[str, ...]] = {}
    #: precision -> the model-folder roles (``model_folder.FILES``) it reads; the first of a tuple of alternatives
    #: that is present is read
    files: Mapping[str, Tuple[Tuple[str, ...], ...]] = {}
    #: device -> rank for ``auto`` (1 is tried first); a device missing here is never chosen by ``auto``
    rank: Mapping[str, int] = {}
    #: ``PredictorOptions`` fields only this backend honours: set to anything but their default, ``auto`` picks a
    #: backend that honours them and an explicit other backend is refused
    honours: Tuple[str, ...] = ()
    #: benchmark processes: backends of one group are timed interleaved in one process, groups apart
    benchmark_group: str = ""
    #: the benchmark's mode name for fp32 (``<mode>_<precision>`` for the others), and extra modes: suffix -> the
    #: export/option settings it changes
    benchmark_mode: str = ""
    benchmark_extra: Mapping[str, Dict[str, Any]] = {}

    # ---- the table's questions -------------------------------------------------------------------------------------

    @classmethod
    def available(cls) -> bool:
        """Whether its library is installed (without importing it)."""
        return importlib.util.find_spec(cls.module) is not None

    @classmethod
    def library_errors(cls) -> Tuple[type, ...]:
        """The exceptions its library raises for a damaged or foreign file and an input the model does not take.
        A ``TypeError``/``AttributeError`` from our own code is never among them: it keeps its traceback."""
        return (RuntimeError, OSError, MemoryError)

    @classmethod
    def runs(cls, device: str, precision: str) -> bool:
        return precision in cls.precisions.get(device, ())

    @classmethod
    def model_files(cls, model_dir: str, precision: str) -> Tuple[Optional[str], ...]:
        """The files it would read for ``precision``: for each needed role the first alternative present (None when
        none is)."""
        found = []
        for alternatives in cls.files.get(precision, ()):
            paths = [model_folder.path(model_dir, role) for role in alternatives]
            found.append(next((p for p in paths if os.path.isfile(p)), None))
        return tuple(found)

    @classmethod
    def missing(cls, model_dir: str, precision: str) -> Optional[str]:
        """Why the folder cannot be run at ``precision`` (the first missing file and how to export it), or None."""
        for alternatives, got in zip(cls.files.get(precision, ()), cls.model_files(model_dir, precision)):
            if got is None:
                file = model_folder.path(model_dir, alternatives[0])
                return f"'{file}' is missing: export it with tools/export.py {export_flag(alternatives[0])}"
        return None

    @classmethod
    def option_problem(cls, opts: PredictorOptions) -> Optional[str]:
        """Backend-specific option checks beyond device and precision (None when the options fit)."""
        return None

    # ---- an instance: one loaded model ----------------------------------------------------------------------------

    def __init__(self, model_dir: str, opts: PredictorOptions, input_size: Sequence[int]):
        if not self.available():
            raise PredictorError(f"the {self.name} backend needs `pip install {self.package}`: install it, or use "
                                 "another --backend (or auto)")
        why = self.missing(model_dir, opts.precision)
        if why:
            raise PredictorError(f"{why}, or use another --backend")
        self.model_dir, self.options, self.input_size = model_dir, opts, tuple(input_size)
        self.files = self.model_files(model_dir, opts.precision)
        self.errors = self.library_errors()
        try:
            self.load(*self.files)
        except PredictorError:  # our own message (a ValueError, as some libraries' errors are)
            raise
        except self.errors as e:  # a truncated or foreign file: the library's own message, first line
            raise PredictorError(f"cannot load {self.describe_files()} ({first_line(e)}): the file is damaged or "
                                 "not from tools/export.py; re-export the model") from None

    def describe_files(self) -> str:
        return " + ".join(f"'{f}'" for f in self.files)

    def load(self, *files: str) -> None:
        """Load the model from ``files`` (those ``model_files`` found); raise the library's errors as they come."""
        raise NotImplementedError

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The model's output for a float32 batch [N, C, H, W]."""
        raise NotImplementedError


#: how a file of the model folder is made (the ``tools/export.py`` flag)
_EXPORT_FLAGS = {"onnx": "--format onnx (or all)", "onnx_int8": "--int8", "mnn": "--format mnn (or all)",
                 "mnn_int8": "--format mnn --int8", "ncnn_param": "--format ncnn (or all)",
                 "ncnn_bin": "--format ncnn (or all)"}


def export_flag(role: str) -> str:
    return _EXPORT_FLAGS.get(role, "(its default --format all)")

