"""``inference.yml``'s second view: the same preprocessing and labels in the vocabulary of PaddleClas's deploy predictor
(``deploy/python/predict_cls.py``) and PaddleX's image-classification predictor, so a model folder we export is read
by them as their own.

Our ``preprocess`` steps are the one source; ``paddle_sections`` writes them as ``Global``, ``PreProcess.transform_ops``
(``ResizeImage``, ``CropImage``, ``NormalizeImage``, ``ToCHWImage``) and ``PostProcess.Topk`` (with the class names as
``label_list``), the sections PaddleClas's export writes. Their rounding is ours (``image.short_side_size``,
``image.center_crop_box``), so all readers compute the same pixels.

Their interpolation names differ (PaddleX upper-cases them and knows ``LINEAR`` for OpenCV, PaddleClas lower-cases
them and knows ``bilinear``), so OpenCV's bilinear is written as no name at all (both default to it), the others by
the name both accept. What the two cannot express (a grey model: both read 3-channel RGB; OpenCV's Lanczos or PIL's
area filter; a normalisation before the scaling) leaves the sections out, and the reason is recorded instead.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

#: PaddleClas's deploy settings (its ``deploy/configs/inference_cls.yaml``), for the CPU; PaddleX reads only
#: ``model_name``. A PaddleClas user adds ``-o Global.inference_model_dir=<folder> -o Global.infer_imgs=<images>``.
PADDLECLAS_GLOBAL = {"batch_size": 1, "use_gpu": False, "enable_mkldnn": True, "cpu_num_threads": 2,
                     "enable_benchmark": False, "use_fp16": False, "ir_optim": True, "use_tensorrt": False,
                     "gpu_mem": 8000, "enable_profile": False}

#: our interpolation -> the name both PaddleClas and PaddleX accept, per resize backend (None: leave it to their
#: default, which is this one; a missing entry: no common name)
_INTERPOLATION = {"cv2": {"bilinear": None, "nearest": "nearest", "bicubic": "bicubic", "area": "area"},
                  "pil": {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic"}}


def paddle_sections(steps: Sequence[Dict[str, Any]], class_names: List[str], model_name: str, channels: int,
                    topk: int = 5) -> Tuple[Dict[str, Any], Optional[str]]:
    """(the ``Global``/``PreProcess``/``PostProcess`` sections, None), or ({}, why they cannot be written)."""
    if channels != 3:
        return {}, f"a {channels}-channel model: PaddleClas and PaddleX read images as 3-channel RGB"
    ops: List[Dict[str, Any]] = []
    scale, mean, std = 1.0, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    for step in steps:
        (name, args), = step.items()
        if args and args.get("rounding", "paddleclas") != "paddleclas":
            return {}, (f"the {name} step rounds as {args['rounding']} does (Data.rounding), and PaddleClas and "
                        "PaddleX round as PaddleClas: their pixels would differ; export with Data.rounding paddleclas "
                        "for them")
        if name == "resize":
            backend = "pil" if args.get("antialias") else "cv2"
            interp = args.get("interpolation", "bilinear")
            if interp not in _INTERPOLATION[backend]:
                return {}, f"the {interp} resize of {backend.upper()} has no name that both PaddleClas and PaddleX read"
            size = args["size"]
            op: Dict[str, Any] = {"resize_short": size} if isinstance(size, int) else \
                {"size": [int(size[1]), int(size[0])]}  # theirs is [width, height]
            if _INTERPOLATION[backend][interp]:
                op["interpolation"] = _INTERPOLATION[backend][interp]
            ops.append({"ResizeImage": {**op, "backend": backend}})
        elif name == "center_crop":
            size = args["size"]
            ops.append({"CropImage": {"size": size if isinstance(size, int) else [int(size[1]), int(size[0])]}})
        elif name == "to_float":
            scale = 1.0 / float(args.get("divisor", 255.0))
        elif name == "normalize":
            if scale == 1.0:
                return {}, "a normalisation before the scaling to [0, 1], which NormalizeImage cannot express"
            mean, std = [float(v) for v in args["mean"]], [float(v) for v in args["std"]]
            mean, std = (mean * 3)[:3] if len(mean) == 1 else mean, (std * 3)[:3] if len(std) == 1 else std
    ops += [{"NormalizeImage": {"scale": scale, "mean": mean, "std": std, "order": "", "channel_num": 3}},
            {"ToCHWImage": None}]
    return {"Global": {"model_name": model_name, **PADDLECLAS_GLOBAL},
            "PreProcess": {"transform_ops": ops},
            "PostProcess": {"Topk": {"topk": min(topk, len(class_names)), "label_list": list(class_names)}}}, None
