"""A recheck of side_by_side.py's ONNX Runtime rows: the authors' file and ours (ln/linear and gn/conv, plain sessions,
and ln/linear through our Predictor) in one process, spinning off, 2 threads, alternating, two rounds.

    python docs/results/deploy/xxs_224_2026-12-07_zen4/ort_one_process.py OUT   # OUT: side_by_side.py's folder
"""
import os
import sys
import time

import numpy as np
import onnxruntime as ort

from edgevit_paddle.inference import Predictor, PredictorOptions


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0]


def median_ms(run, x, n):
    for _ in range(3):
        run(x)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main(out):
    runners = {"original": session(os.path.join(out, "original_xxs.onnx")),
               "ours ln/linear": session(os.path.join(out, "ln_linear", "inference.onnx")),
               "ours ln/linear, Predictor": Predictor(os.path.join(out, "ln_linear"),
                                                      PredictorOptions(backend="onnxruntime", cpu_threads=2)).run,
               "ours gn/conv": session(os.path.join(out, "gn_conv", "inference.onnx"))}
    for batch in (1, 8):
        x = np.random.RandomState(0).standard_normal([batch, 3, 224, 224]).astype(np.float32)
        for r in (1, 2):
            row = {k: f"{median_ms(f, x, 20 if batch == 1 else 8):.2f}" for k, f in runners.items()}
            print(f"batch {batch} round {r}: " + ", ".join(f"{k} {v} ms" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
