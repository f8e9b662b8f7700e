"""The processes that time cases: dygraph (eval and training steps) or predictor, each kind in its own process.

Started by ``runner`` as ``python -m edgevit_paddle.benchmark.workers`` (spec as JSON on stdin, timings as JSON on
stdout), or under ``paddle.distributed.launch`` with this file as the training script and a spec file (data-parallel
training). A user error inside a worker (e.g. a device or precision this machine lacks) comes back as one line; any
other failure brings its traceback.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Dict, List, Sequence

import numpy as np

from edgevit_paddle.benchmark.cases import Case, deploy_modes, deploy_options, reads_beyond_paddle
from edgevit_paddle.builder import build_model_from_config
from edgevit_paddle.errors import UserError
from edgevit_paddle.paddle_compat import set_math_threads

#: exit code of a worker that stopped on a user error (its message is the last line of stdout, as JSON)
USER_ERROR_EXIT = 3


def build(case: Case):
    """The case's model (random weights) and its input shape for this process's share of the batch."""
    net = build_model_from_config({"Model": {"name": case.model, **case.variant}, "Data": {"image_size": case.size}})
    return net, [case.batch // case.procs, net.in_chans, case.size, case.size]


def _percentiles(times: List[float]) -> Dict[str, float]:
    ms = np.asarray(times) * 1000.0
    return {"median_ms": float(np.median(ms)), "p10_ms": float(np.percentile(ms, 10)),
            "p90_ms": float(np.percentile(ms, 90)), "runs": len(ms)}


def _dygraph_runners(cases: Sequence[Case]):
    """Eval forwards, or training steps with the product's optimizer, schedule and loss (the config defaults)."""
    import paddle

    from edgevit_paddle.config import section_defaults
    from edgevit_paddle.engine.model_api import hapi_model
    from edgevit_paddle.engine.optim import build_loss, build_optimizer
    runners = {}
    for case in cases:
        net, shape = build(case)
        x = paddle.randn(shape)
        if case.mode == "eval":
            net.eval()

            def run(net=net, x=x):
                with paddle.no_grad():
                    net(x).numpy()
        else:
            optimizer, _ = build_optimizer(section_defaults("Optimizer"), net, steps_per_epoch=1000, epochs=1)
            api = hapi_model(net, shape[1], shape[2], optimizer, build_loss(section_defaults("Loss")))
            y = np.random.randint(0, net.num_classes, [shape[0], 1]).astype("int64")
            xs = x.numpy()

            def run(api=api, xs=xs, y=y):
                api.train_batch([xs], [y])
        runners[case.key] = run
    return runners


def _predictor_runners(cases: Sequence[Case], threads: int, workdir: str):
    """Exported models (random weights; ONNX and INT8 too when a case needs them, INT8 calibrated on noise) through
    the product's ``Predictor``, as ``deploy_modes()`` says."""
    from edgevit_paddle.export import export_model, preprocess
    from edgevit_paddle.inference import Predictor
    runners = {}
    exported: Dict[str, str] = {}
    deploy = deploy_modes()
    for case in cases:
        mode = deploy[case.mode]
        fold = mode.get("fold", True)
        tag = f"{Case(case.model, 1, case.size, 'export', case.variant).key}|{fold}"
        if tag not in exported:
            net, shape = build(case)
            out = os.path.join(workdir, str(len(exported)))
            int8 = any(deploy[c.mode]["precision"] == "int8" for c in cases)
            calibration = [np.random.RandomState(i).standard_normal([4, *shape[1:]]).astype(np.float32)
                           for i in range(2)] if int8 else None
            export_model(net, out, shape[1:], {"preprocess": preprocess.from_cfg(net.default_cfg, case.size),
                                               "class_names": []}, fold=fold, check=False, calibration=calibration,
                         formats="all" if any(reads_beyond_paddle(c.mode) for c in cases)
                         else "paddle")
            exported[tag] = out
        pred = Predictor(exported[tag], deploy_options(case.mode, threads))
        x = np.random.RandomState(0).standard_normal([case.batch, *pred.input_size]).astype(np.float32)
        runners[case.key] = lambda pred=pred, x=x: pred.run(x)
    return runners


def time_cases(cases: Sequence[Case], kind: str, warmup: int, runs: int, threads: int) -> Dict[str, Dict[str, float]]:
    """Time ``cases`` (all dygraph or all predictor) interleaved round-robin in this process."""
    from tqdm import tqdm

    from edgevit_paddle import kernels
    kernels.set_threads(threads)  # our compiled kernels use the threads Paddle's math library is given, no more
    with tempfile.TemporaryDirectory() as tmp:
        runners = _dygraph_runners(cases) if kind == "dygraph" else _predictor_runners(cases, threads, tmp)  # or ORT
        for run in runners.values():
            for _ in range(warmup):
                run()
        times: Dict[str, List[float]] = {k: [] for k in runners}
        for _ in tqdm(range(runs), desc=f"{kind} rounds ({len(runners)} cases)", file=sys.stderr, leave=False):
            for key, run in runners.items():
                t0 = time.perf_counter()
                run()
                times[key].append(time.perf_counter() - t0)
    return {k: _percentiles(v) for k, v in times.items()}


def spec_json(cases: Sequence[Case], kind: str, warmup: int, runs: int, threads: int, **more) -> str:
    return json.dumps({"cases": [asdict(c) for c in cases], "kind": kind, "warmup": warmup, "runs": runs,
                       "threads": threads, **more})


def _run_spec(spec: dict) -> Dict[str, Dict[str, float]]:
    return time_cases([Case(**c) for c in spec["cases"]], spec["kind"], spec["warmup"], spec["runs"], spec["threads"])


def _data_parallel(spec_path: str) -> None:
    """One process of a data-parallel group: join it, time the cases, rank 0 writes the result file."""
    import paddle.distributed as dist
    with open(spec_path) as f:
        spec = json.load(f)
    dist.init_parallel_env()
    set_math_threads(spec["threads"])
    result = _run_spec(spec)
    if dist.get_rank() == 0:
        with open(spec["out"], "w") as f:
            json.dump(result, f)


def main(argv: Sequence[str]) -> int:
    import warnings
    warnings.filterwarnings("ignore")
    try:
        if argv:  # under paddle.distributed.launch: a spec file
            _data_parallel(argv[0])
        else:
            print(json.dumps(_run_spec(json.loads(sys.stdin.read()))))
    except UserError as e:
        print(json.dumps({"error": str(e)}))
        return USER_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
