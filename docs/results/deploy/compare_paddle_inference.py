"""Paddle Inference (our backend's configuration, 2 threads) on two or more export folders, interleaved in one
process: median ms of 12 calls after 3 warm-up calls, at batch 1 and 8 (224x224).

    python docs/results/deploy/compare_paddle_inference.py MODEL_A MODEL_B [...]
"""
import sys
import time

import numpy as np

from edgevit_paddle import paddle_noise  # noqa: F401  (Paddle imported quietly)
from edgevit_paddle.inference import Predictor, PredictorOptions


def main(folders):
    preds = {d: Predictor(d, PredictorOptions(backend="paddle", cpu_threads=2)) for d in folders}
    for batch in (1, 8):
        x = np.random.RandomState(0).standard_normal([batch, 3, 224, 224]).astype(np.float32)
        times = {d: [] for d in preds}
        for _ in range(15):
            for d, p in preds.items():
                t0 = time.perf_counter()
                p.run(x)
                times[d].append(time.perf_counter() - t0)
        print(f"batch {batch}: " + ", ".join(f"{d} {1000 * float(np.median(v[3:])):.2f} ms" for d, v in times.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
