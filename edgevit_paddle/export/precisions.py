"""What each precision costs and keeps, measured at export on real eval images: for every backend that ``auto`` may
choose on the CPU and every precision it runs on the files written, the top-1 agreement with that backend's fp32 and
the batch-1 time. Recorded in ``inference.yml`` (``precisions``), where ``--precision auto`` reads it
(``backends.choose_precision``)."""
from __future__ import annotations

import time
from typing import Any, Dict, List

import numpy as np

from .. import cpu
from ..inference import Predictor, PredictorOptions, backends

#: timed calls at batch 1 (after two warm-up calls); the median is recorded
_RUNS = 10


def _batched(pred: Predictor, images: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([pred.run(images[i:i + batch]) for i in range(0, len(images), batch)])


def _ms_batch1(pred: Predictor, image: np.ndarray) -> float:
    x = image[None]
    for _ in range(2):
        pred.run(x)
    times = []
    for _ in range(_RUNS):
        t0 = time.perf_counter()
        pred.run(x)
        times.append(time.perf_counter() - t0)
    return round(1000 * float(np.median(times)), 3)


def measure(model_dir: str, images: np.ndarray, threads: int = 2) -> Dict[str, Any]:
    """``precisions`` for ``inference.yml``: ``measured`` [{backend, precision, top1_agreement, ms_batch1}], the
    number of ``images``, and the machine (the times are this machine's)."""
    measured: List[Dict[str, Any]] = []
    for b in backends.candidates(backends.AUTO, "cpu"):
        if not b.available():
            continue
        runs = [p for p in b.precisions.get("cpu", ()) if not b.missing(model_dir, p)
                and not b.option_problem(PredictorOptions(backend=b.name, precision=p))]
        if "fp32" not in runs:
            continue
        ref = None
        for precision in ["fp32"] + [p for p in runs if p != "fp32"]:
            pred = Predictor(model_dir, PredictorOptions(backend=b.name, precision=precision, cpu_threads=threads))
            top1 = _batched(pred, images).argmax(1)
            ref = top1 if ref is None else ref
            measured.append({"backend": b.name, "precision": precision,
                             "top1_agreement": round(float((top1 == ref).mean()), 6),
                             "ms_batch1": _ms_batch1(pred, images[0])})
    machine = f"{cpu.model_name()} ({', '.join(cpu.recorded_flags())})"
    return {"images": int(len(images)), "threads": threads, "machine": machine, "measured": measured}
