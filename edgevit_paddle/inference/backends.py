"""The backend table: every way of running an exported model, and what is read off it.

A new backend is one file with a ``Backend`` subclass and one line in ``BACKENDS``; the option checks, ``auto``, the
CLI's choices and help, the benchmark's deploy modes and groups, and ``precision_agreement``'s reference come from
here.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Dict, List, Optional, Tuple, Type

from ..errors import PredictorError
from .backend import Backend
from .mnn_backend import MnnBackend
from .ncnn_backend import NcnnBackend
from .onnx_backend import OnnxRuntimeBackend
from .openvino_backend import OpenVinoBackend
from .options import PredictorOptions
from .paddle_backend import PaddleBackend

#: the backends, in the order ``--help`` lists them
BACKENDS: Tuple[Type[Backend], ...] = (PaddleBackend, OnnxRuntimeBackend, OpenVinoBackend, MnnBackend, NcnnBackend)
#: the name that lets the table choose
AUTO = "auto"


def backend_names() -> Tuple[str, ...]:
    return tuple(b.name for b in BACKENDS)


def choices() -> Tuple[str, ...]:
    """What ``--backend`` takes."""
    return (*backend_names(), AUTO)


def precisions() -> Tuple[str, ...]:
    """Every precision some backend runs, in a stable order."""
    seen: List[str] = []
    for b in BACKENDS:
        for device_precisions in b.precisions.values():
            seen += [p for p in device_precisions if p not in seen]
    return tuple(seen)


def devices() -> Tuple[str, ...]:
    seen: List[str] = []
    for b in BACKENDS:
        seen += [d for d in b.precisions if d not in seen]
    return tuple(seen)


def get(name: str) -> Type[Backend]:
    for b in BACKENDS:
        if b.name == name:
            return b
    raise PredictorError(f"unknown backend '{name}': use {', '.join(choices())}")


def candidates(backend: str, device: str) -> List[Type[Backend]]:
    """The backends ``--backend backend`` may run on ``device``: the one named, or for ``auto`` those ranked for the
    device (the mobile runtimes are never ``auto``'s choice)."""
    if backend != AUTO:
        return [get(backend)]
    return [b for b in BACKENDS if device in b.rank]


def _set_options(opts: PredictorOptions) -> List[str]:
    """The backend-specific options ``opts`` sets to something other than their default."""
    defaults = PredictorOptions()
    owned = {o for b in BACKENDS for o in b.honours}
    return sorted(o for o in owned if getattr(opts, o) != getattr(defaults, o))


def _flag(option: str, opts: PredictorOptions) -> str:
    value = getattr(opts, option)
    name = option.replace("_", "-")
    return f"--{name}" if value is True else f"--no-{name}" if value is False else f"--{name} {value}"


def check_options(opts: PredictorOptions) -> None:
    """Refuse impossible combinations before anything loads, with the fix in the message (whether a device is really
    there is checked by the backend that runs the model). ``precision`` ``auto`` is checked as fp32 (what it falls
    back to)."""
    if not 0 < opts.min_agreement <= 1:
        raise PredictorError(f"the agreement bar {opts.min_agreement} must be a fraction in (0, 1], e.g. 0.995")
    if opts.precision == AUTO:
        opts = replace(opts, precision="fp32")
    if opts.device not in devices():
        raise PredictorError(f"unknown device '{opts.device}': use {' or '.join(devices())}")
    if opts.backend not in choices():
        raise PredictorError(f"unknown backend '{opts.backend}': use {', '.join(choices())}")
    if opts.batch_size < 1 or opts.cpu_threads < 1:
        raise PredictorError("--batch-size and --cpu-threads must be >= 1")
    # auto chooses among the backends ranked for the device (the mobile runtimes are never its choice)
    allowed = candidates(opts.backend, opts.device)
    on_device = [b for b in allowed if b.runs(opts.device, opts.precision)]
    if not on_device:
        valid = [p for p in precisions() if any(b.runs(opts.device, p) for b in allowed)]
        who = "" if opts.backend == AUTO else f" with --backend {opts.backend}"
        others = [b.name for b in BACKENDS if b.runs(opts.device, opts.precision) and b not in allowed]
        alt = f", or --backend {' or '.join(others)}" if others else ""
        raise PredictorError(f"precision {opts.precision} is not available on {opts.device}{who}: use "
                             f"{' or '.join(valid)}{alt}")
    wanted = _set_options(opts)
    for option in wanted:
        owners = [b.name for b in BACKENDS if option in b.honours]
        if not any(b.name in owners for b in on_device):
            raise PredictorError(f"{_flag(option, opts)} is an option of {' and '.join(owners)}: use --backend "
                                 f"{owners[0]} (or auto), or drop it")
    fitting = [b for b in on_device if all(o in b.honours for o in wanted)]
    if not fitting:
        raise PredictorError(f"no backend honours {' and '.join(_flag(o, opts) for o in wanted)} together: drop one")
    problems = [b.option_problem(opts) for b in fitting]
    if all(problems):
        raise PredictorError(problems[0])


def resolve(opts: PredictorOptions, model_dir: str) -> Type[Backend]:
    """The backend ``opts`` asks for; for ``auto``, the first by rank on the device that runs the precision,
    honours every backend-specific option set, is installed and finds its files in ``model_dir``."""
    if opts.backend != AUTO:
        return get(opts.backend)
    wanted = _set_options(opts)
    ranked = sorted((b for b in candidates(AUTO, opts.device) if b.runs(opts.device, opts.precision)
                     and all(o in b.honours for o in wanted) and not b.option_problem(opts)),
                    key=lambda b: b.rank[opts.device])
    why: Dict[str, str] = {}
    for b in ranked:
        missing = b.missing(model_dir, opts.precision)
        if missing is None and b.available():
            return b
        why[b.name] = missing or f"not installed (pip install {b.package})"
    reasons = "; ".join(f"{k}: {v}" for k, v in why.items()) or "no backend runs it"
    raise PredictorError(f"nothing here can run '{os.path.abspath(model_dir)}' at {opts.precision} on "
                         f"{opts.device} ({reasons})")


def choose_precision(opts: PredictorOptions, meta: Dict[str, object], model_dir: str
                     ) -> Tuple[PredictorOptions, Optional[str]]:
    """``opts`` with ``precision`` ``auto`` made concrete, and why (None when a precision was given).

    The export records, per (backend, precision) it could run, the top-1 agreement with that backend's fp32 on real
    eval images and the batch-1 time (``inference.yml``'s ``precisions``). Chosen: the fastest recorded pair whose
    agreement is at least ``opts.min_agreement`` (fp32 counts as 1) and that runs here as ``opts`` asks (its backend
    the one asked for, or ranked for ``auto``; installed; its files present; its option checks passed); else fp32
    with the usual backend."""
    if opts.precision != AUTO:
        return opts, None
    fallback = replace(opts, precision="fp32")
    if opts.device != "cpu":  # the export measures the CPU's backends only
        return fallback, f"fp32 (the export measures precisions on the CPU, not on {opts.device})"
    recorded = meta.get("precisions") if isinstance(meta.get("precisions"), dict) else {}
    entries = recorded.get("measured") if isinstance(recorded.get("measured"), list) else []
    wanted = _set_options(opts)
    allowed = {b.name for b in candidates(opts.backend, opts.device)}
    best = None
    for e in entries:
        if not (isinstance(e, dict) and e.get("backend") in backend_names() and isinstance(e.get("precision"), str)
                and isinstance(e.get("top1_agreement"), (int, float)) and isinstance(e.get("ms_batch1"), (int, float))):
            continue
        b = get(e["backend"])
        if b.name not in allowed:
            continue
        trial = replace(opts, precision=e["precision"], backend=b.name)
        if (e["top1_agreement"] < opts.min_agreement or not b.runs(opts.device, e["precision"])
                or not all(o in b.honours for o in wanted) or b.option_problem(trial) or not b.available()
                or b.missing(model_dir, e["precision"])):
            continue
        if best is None or e["ms_batch1"] < best[0]["ms_batch1"]:
            best = (e, trial)
    if best is None:
        why = "no reduced precision recorded at export" if not entries else \
            f"no recorded precision reaches {100 * opts.min_agreement:g}% top-1 agreement with fp32 here"
        return fallback, f"fp32 ({why})"
    e, trial = best
    images = recorded.get("images", "?")
    return trial, (f"{e['precision']}: the fastest recorded at export ({e['ms_batch1']:.1f} ms at "
                   f"batch 1) with {100 * e['top1_agreement']:.1f}% top-1 agreement with fp32 on {images} eval images "
                   f"(bar {100 * opts.min_agreement:g}%)")


def help_text() -> str:
    """``--backend``'s help, from the table."""
    lines = [f"{b.name}: {b.summary}" for b in BACKENDS]
    order = {d: ", ".join(b.name for b in sorted(candidates(AUTO, d), key=lambda b: b.rank[d]))
             for d in devices()}
    rule = "; ".join(f"{d}: {o}" for d, o in order.items() if o)
    return "; ".join(lines) + f"; auto (default): the first installed that runs the device and precision and finds " \
                              f"its files, in this order ({rule})"


def benchmark_modes() -> Dict[str, Dict[str, object]]:
    """The benchmark's deploy modes: per backend its fp32 mode, one per other precision on the CPU, and its extras;
    each maps to the backend, precision and any export/option settings it changes."""
    modes: Dict[str, Dict[str, object]] = {}
    for b in BACKENDS:
        for precision in b.precisions.get("cpu", ()):
            suffix = "" if precision == "fp32" else f"_{precision}"
            modes[b.benchmark_mode + suffix] = dict(backend=b.name, precision=precision)
        for suffix, settings in b.benchmark_extra.items():
            modes[f"{b.benchmark_mode}_{suffix}"] = dict(backend=b.name, precision="fp32", **settings)
    return modes
