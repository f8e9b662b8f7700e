"""Export a model for deployment and prove the export: Paddle Inference files, ONNX, MNN, ncnn, INT8, each checked.

``export_model`` writes the Paddle files (``paddle_inference.py``), then for a model with a dynamic input size checks
the predictor against dygraph at the exported size and at a second one, refuses non-finite outputs, converts to ONNX
and checks ONNX Runtime against the Paddle predictor, converts the ONNX file for the mobile runtimes MNN and ncnn
(``edge.py``) and checks each against the Paddle predictor (probabilities and top-1), and optionally quantises to INT8
with calibration batches.
``export_from_config`` does it for a training run (real eval images for the checks, training images for the
calibration); ``export_registered`` for a registry name with random weights.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import paddle
import paddle.nn as nn

from ..builder import build_model_from_config
from ..data import build_dataset, class_names, eval_transforms
from ..errors import ExportError
from ..files import staged_folder
from ..inference import model_folder
from ..labels import read_labels
from ..registry import create_model
from . import edge, precisions, preprocess
from .onnx import quantize_int8, to_onnx
from .paddle_inference import Probabilities, save_paddle, write_sidecar

#: what ``--format`` takes: each writes the Paddle files too (the others are converted from them); ``mnn`` and
#: ``ncnn`` go through the ONNX file; ``all`` writes every format whose packages are installed (``edge.available``)
FORMATS = ("paddle", "onnx", "mnn", "ncnn", "all")
#: the mobile runtimes' formats (``edge.py``)
EDGE_FORMATS = ("mnn", "ncnn")
#: the largest difference an export may show against the model it came from (its outputs are probabilities)
TOLERANCE = 1e-4


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


def _within(diff: float, ref: np.ndarray) -> bool:
    return diff <= TOLERANCE * max(1.0, float(np.abs(ref).max()))


def export_model(net: nn.Layer, out_dir: str, input_size: Sequence[int], meta: Dict[str, Any], fold: bool = True,
                 formats: str = "all", check: bool = True, sample: Optional[np.ndarray] = None,
                 calibration: Optional[Sequence[np.ndarray]] = None,
                 agreement: Optional[np.ndarray] = None) -> Dict[str, Any]:
    """Export ``net`` into ``out_dir`` and check every file written against it.

    The folder is written whole or not at all: everything is written and checked in a staging folder beside it,
    which then replaces ``out_dir`` in one step (``files.staged_folder``), so a kill, a full disk or a failed check
    leaves an earlier export there as it was, never a mix of two.

    Args:
        net: the dygraph model with its weights.
        out_dir: the model folder.
        input_size: (C, H, W) the predictor's preprocessing ends at.
        meta: ``inference.yml`` fields (preprocess, class_names, weights...); the preprocessing is completed so that
            every image ends at ``input_size`` (``preprocess.fit_to_size``).
        fold: fold BatchNorms (exact).
        formats: ``paddle``, ``onnx`` (needs the Paddle files, so writes both), ``mnn`` or ``ncnn`` (through the
            ONNX file, so writes all three) or ``all`` (MNN and ncnn when their packages are installed).
        check: compare the exports with dygraph (``sample``, or a seeded random batch).
        sample: a batch [N, C, H, W] at ``input_size`` for the checks (real images are best).
        calibration: batches for INT8 calibration; when given, ``inference_int8.onnx`` is written.
        agreement: real eval images [N, C, H, W]: each precision's top-1 agreement with fp32 and its batch-1 time
            are measured on them and recorded in ``inference.yml`` (``precisions``, read by ``--precision auto``).
    Returns:
        ``files`` written and ``checks``: the maximum absolute differences measured.
    """
    if formats not in FORMATS:
        raise ExportError(f"unknown format '{formats}': use {', '.join(FORMATS)}")
    _check_out_dir(out_dir)
    try:
        with staged_folder(out_dir) as stage:
            result = _export_into(stage, net, input_size, meta, fold, formats, check, sample, calibration, agreement)
    except OSError as e:
        problem = {errno.ENOSPC: "no space left", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only",
                   errno.EACCES: "permission denied", errno.EPERM: "not permitted"}.get(e.errno)
        if problem is None:
            raise
        raise ExportError(f"cannot write the export beside '{out_dir}' ({problem}): free space or choose another "
                          "--out; an earlier export there is intact") from None
    files = {k: os.path.join(os.path.abspath(out_dir), os.path.basename(v)) for k, v in result["files"].items()}
    return {**result, "files": files, "out_dir": out_dir}


def _check_out_dir(out_dir: str) -> None:
    """Refuse a target that is a file, or a folder holding files an export does not write (the export replaces the
    whole folder)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ExportError(f"--out '{out_dir}' is a file: give a folder")
    if os.path.isdir(out_dir):
        foreign = model_folder.foreign_files(out_dir)
        if foreign:
            raise ExportError(f"'{out_dir}' holds files that are not an export ({', '.join(foreign[:5])}): an export "
                              "replaces the whole folder, so give an empty folder or an earlier export")


def _export_into(out_dir: str, net: nn.Layer, input_size: Sequence[int], meta: Dict[str, Any], fold: bool,
                 formats: str, check: bool, sample: Optional[np.ndarray],
                 calibration: Optional[Sequence[np.ndarray]], agreement: Optional[np.ndarray]) -> Dict[str, Any]:
    """Write and check every file in ``out_dir`` (a staging folder: nothing is visible until all checks pass); the
    program converted to ONNX, when it differs from Paddle Inference's, lives in a temporary folder inside it."""
    net.eval()
    h = int(input_size[1])
    meta = {**meta, "preprocess": preprocess.fit_to_size(list(meta.get("preprocess") or []), h,
                                                         net.default_cfg.crop_pct)}
    wants_onnx = formats != "paddle" or calibration is not None
    onnx_program = tempfile.mkdtemp(prefix=".onnx-program-", dir=out_dir) if wants_onnx else None
    try:
        return _write_and_check(out_dir, net, input_size, meta, fold, formats, check, sample, calibration, agreement,
                                onnx_program)
    finally:
        if onnx_program is not None:
            shutil.rmtree(onnx_program, ignore_errors=True)


def _write_and_check(out_dir: str, net: nn.Layer, input_size: Sequence[int], meta: Dict[str, Any], fold: bool,
                     formats: str, check: bool, sample: Optional[np.ndarray],
                     calibration: Optional[Sequence[np.ndarray]], agreement: Optional[np.ndarray],
                     onnx_program: Optional[str]) -> Dict[str, Any]:
    c, h, w = (int(v) for v in input_size)
    cfg = net.default_cfg
    files: Dict[str, str] = save_paddle(net, out_dir, input_size, meta, fold=fold, onnx_program=onnx_program)
    program = files.pop("onnx_program")
    checks: Dict[str, Any] = {}
    x = sample if sample is not None else np.random.RandomState(0).standard_normal([2, c, h, w]).astype(np.float32)
    if check:
        ref = _probabilities(net, x)
        if not np.isfinite(ref).all():
            raise ExportError("the model's outputs are not finite (NaN or inf) on the check batch: its weights are "
                              "damaged; export from a good checkpoint")
        checks["paddle"], paddle_out = _check_paddle(net, out_dir, x, ref, cfg)
    edge_formats = [f for f in EDGE_FORMATS if formats == f or (formats == "all" and edge.available(f))]
    skipped = [edge.missing_message(f) for f in EDGE_FORMATS if formats == "all" and f not in edge_formats]
    if onnx_program is not None:  # ONNX is written (every format but paddle needs it, and INT8)
        files["onnx"] = to_onnx(out_dir, program_dir=program)
        shutil.rmtree(onnx_program, ignore_errors=True)  # converted: not part of the folder
        if check:
            checks["onnx"], onnx_out = _check_onnx(out_dir, x, paddle_out)
    for fmt in edge_formats:
        if fmt == "mnn":
            files["mnn"] = edge.to_mnn(out_dir)
        else:
            files["ncnn_param"], files["ncnn_bin"] = edge.to_ncnn(out_dir, (c, h, w))
    if edge_formats:  # the tensor names a phone's code (and our MNN backend) gives each runtime
        write_sidecar(out_dir, {**model_folder.read_sidecar(out_dir), "mobile": edge.io_names(out_dir, edge_formats)})
    for fmt in edge_formats if check else ():
        checks[fmt] = _check_edge(out_dir, fmt, x, paddle_out)
    if calibration is not None:
        files["int8"] = quantize_int8(out_dir, calibration)
        if check:
            int8_out = _predictor(out_dir, "onnxruntime", "int8").run(x)
            checks["int8_top1_agreement"] = float((int8_out.argmax(1) == onnx_out.argmax(1)).mean())
    recorded = {}
    if agreement is not None and len(agreement):
        recorded = {"precisions": precisions.measure(out_dir, agreement)}
        checks["precisions"] = recorded["precisions"]
    write_sidecar(out_dir, {**model_folder.read_sidecar(out_dir), **recorded, "digests": model_folder.digests(out_dir)})
    return {"files": files, "out_dir": out_dir, "checks": checks, "skipped": skipped}


def _probabilities(net: nn.Layer, x: np.ndarray) -> np.ndarray:
    """What the exported program computes, in dygraph (``paddle_inference.Probabilities``)."""
    with paddle.no_grad():
        return Probabilities(net)(paddle.to_tensor(x)).numpy()


def _predictor(out_dir: str, backend: str, precision: str = "fp32"):
    from ..inference import Predictor, PredictorOptions
    return Predictor(out_dir, PredictorOptions(cpu_threads=2, backend=backend, precision=precision))


def _check_paddle(net: nn.Layer, out_dir: str, x: np.ndarray, ref: np.ndarray, cfg):
    """The Paddle predictor against dygraph at the exported size and, for a dynamic size, at a second, non-square
    one (a multiple of the stride). Returns the differences and the predictor's output on ``x``."""
    pred = _predictor(out_dir, "paddle")
    results, out = [], None
    sizes = [x.shape[2]]
    if not cfg.fixed_input_size:
        second = cfg.small_size(2 * cfg.stride)
        sizes.append(second if second != x.shape[2] else second + cfg.stride)
    for size in sizes:
        xs = x if size == x.shape[2] else np.random.RandomState(1).standard_normal(
            [2, x.shape[1], size, size + cfg.stride]).astype(np.float32)
        want = ref if xs is x else _probabilities(net, xs)
        got = pred.run(xs)
        out = got if xs is x else out
        diff = _diff(got, want)
        results.append({"size": list(xs.shape[2:]), "max_abs_diff": diff})
        if not _within(diff, want):
            raise RuntimeError(f"the exported model differs from the dygraph model by {diff:.3g} at "
                               f"{xs.shape[2]}x{xs.shape[3]}: please report this")
    return results, out


def _check_onnx(out_dir: str, x: np.ndarray, paddle_out: np.ndarray):
    """ONNX Runtime against the Paddle predictor's output on the same batch; returns the difference and ORT's
    output."""
    got = _predictor(out_dir, "onnxruntime").run(x)
    diff = _diff(got, paddle_out)
    if not _within(diff, paddle_out):
        raise RuntimeError(f"the ONNX model differs from the Paddle model by {diff:.3g}: please report this")
    return diff, got


def _check_edge(out_dir: str, fmt: str, x: np.ndarray, paddle_out: np.ndarray) -> Dict[str, float]:
    """A mobile runtime (``fmt``, its backend of the same name) against the Paddle predictor on the same batch: the
    probabilities within the tolerance and the same top-1 for every image; and its fp16 run's top-1 agreement with
    its fp32 run (reported, not required: fp16 is the phone's choice to make)."""
    got = _predictor(out_dir, fmt).run(x)
    diff = _diff(got, paddle_out)
    same = float((got.argmax(1) == paddle_out.argmax(1)).mean())
    if not _within(diff, paddle_out) or same < 1.0:
        raise RuntimeError(f"the {fmt} model differs from the Paddle model by {diff:.3g} (top-1 the same for "
                           f"{same:.0%} of the check images): please report this")
    fp16 = _predictor(out_dir, fmt, "fp16").run(x)
    return {"max_abs_diff": diff, "top1_agreement": same,
            "fp16_top1_agreement": float((fp16.argmax(1) == got.argmax(1)).mean())}


def _eval_batches(cfg: Dict[str, Any], split: str, n: int, batch: int = 8) -> List[np.ndarray]:
    """``n`` images of a split through the eval transform (what the predictor computes), seeded, in batches."""
    data = dict(cfg["Data"], **{split: dict(cfg["Data"][split], transforms=eval_transforms(cfg["Data"]))})
    ds = build_dataset(data, split)
    idx = np.random.RandomState(0).permutation(len(ds))[:n]
    images = [ds[int(i)][0] for i in idx]
    return [np.stack(images[i:i + batch]) for i in range(0, len(images), batch)]


def export_from_config(cfg: Dict[str, Any], weights: Optional[str] = None, out_dir: Optional[str] = None,
                       fold: Optional[bool] = None, check: bool = True, formats: str = "all", int8: bool = False,
                       calib_images: int = 64, agreement_images: int = 256) -> Dict[str, Any]:
    """Export the model of ``cfg`` (with ``weights``, or random weights when None) and check it.

    The model is built as training built it (``build_model_from_config``): weights of another model or variant are
    refused. The output folder is ``--out``, else ``Export.output_dir``, else ``<run>/inference`` beside the
    checkpoints. Class names come from ``Infer.label_file`` or the run's ``labels.txt``. The checks run on eight
    eval images; INT8 calibrates on ``calib_images`` training images through the eval transform; each precision's
    agreement with fp32 is measured on up to ``agreement_images`` eval images (0: not measured, ``auto`` then runs
    fp32).
    """
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(weights))) if weights else None
    labels = read_labels(cfg["Infer"]["label_file"]) or \
        read_labels(run_dir and os.path.join(run_dir, "labels.txt"), required=False)
    if weights:
        net = build_model_from_config(cfg, weights=weights)
    else:
        labels = labels or class_names(cfg["Data"])
        net = build_model_from_config(cfg, num_classes=len(labels))
    if labels and len(labels) != net.num_classes:
        raise ExportError(f"{len(labels)} class names for a model with {net.num_classes} classes: fix "
                          "Infer.label_file")
    if int8 and calib_images < 1:
        raise ExportError(f"--calib-images must be >= 1, got {calib_images}")
    if agreement_images < 0:
        raise ExportError(f"--agreement-images must be >= 0, got {agreement_images}")
    name = cfg["Model"]["name"]
    size = cfg["Export"]["image_size"] or cfg["Data"]["image_size"]
    why = net.default_cfg.check_size(size, size)
    if why:
        raise ExportError(f"export size {size} does not fit {name}: {why}; set Export.image_size")
    input_size = (cfg["Data"]["channels"], size, size)
    out_dir = out_dir or cfg["Export"]["output_dir"] or (os.path.join(run_dir, "inference") if run_dir else
                                                         os.path.join(cfg["Global"]["output_dir"], f"{name}_inference"))
    fold = cfg["Export"]["fold_bn"] if fold is None else fold
    meta = {"class_names": labels or [str(i) for i in range(net.num_classes)],
            "preprocess": preprocess.from_transforms(eval_transforms(cfg["Data"])),
            "weights": os.path.abspath(weights) if weights else "random (no --weights)",
            "paddlex_name": cfg["Export"]["paddlex_name"]}
    sample = calibration = agreement = None
    if check and size == cfg["Data"]["image_size"]:
        sample = np.concatenate(_eval_batches(cfg, "Eval", 8))
        if agreement_images:
            agreement = np.concatenate(_eval_batches(cfg, "Eval", agreement_images))
    if int8:
        calibration = _eval_batches(cfg, "Train", calib_images)
    return export_model(net, out_dir, input_size, meta, fold=fold, formats=formats, check=check, sample=sample,
                        calibration=calibration, agreement=agreement)


def export_registered(name: str, out_dir: str, fold: bool = True, image_size: Optional[int] = None,
                      formats: str = "all", paddlex_name: Optional[str] = None, **model_kwargs: Any) -> Dict[str, Any]:
    """Export a registered model with random weights at its default input size (for benchmarks and smoke tests),
    with the model's own eval preprocessing (``default_cfg``)."""
    net = create_model(name, **model_kwargs)
    cfg = net.default_cfg
    size = image_size or cfg.input_size[1]
    meta = {"class_names": [str(i) for i in range(net.num_classes)], "preprocess": preprocess.from_cfg(cfg, size),
            "weights": "random (registry name)", "paddlex_name": paddlex_name}
    return export_model(net, out_dir, (cfg.in_chans, size, size), meta, fold=fold, formats=formats)
