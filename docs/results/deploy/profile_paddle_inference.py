"""Where Paddle Inference (CPU, oneDNN, as our backend configures it) spends a batch-1 forward: its own profiler's
per-op table, after 10 warm-up calls, over 20 timed calls.

    python tools/export.py --model edgevit_xxs --out MODEL            # gn/conv, random weights
    python docs/results/deploy/profile_paddle_inference.py MODEL [SIZE]
"""
import sys
import time

import numpy as np

from edgevit_paddle import paddle_noise  # noqa: F401  (Paddle imported quietly)
from edgevit_paddle.inference import PredictorOptions
from edgevit_paddle.inference.paddle_backend import config_calls


def main(model_dir, size=224):
    import paddle.inference as pi
    cfg = pi.Config(f"{model_dir}/inference.json", f"{model_dir}/inference.pdiparams")
    for name, args in config_calls(PredictorOptions(cpu_threads=2)):
        getattr(cfg, name)(*args)
    cfg.enable_profile()
    pred = pi.create_predictor(cfg)
    x = np.random.RandomState(0).standard_normal([1, 3, size, size]).astype(np.float32)
    inp = pred.get_input_handle(pred.get_input_names()[0])
    out = pred.get_output_handle(pred.get_output_names()[0])
    times = []
    for i in range(30):
        t0 = time.perf_counter()
        inp.copy_from_cpu(x)
        pred.run()
        out.copy_to_cpu()
        if i >= 10:
            times.append(1000 * (time.perf_counter() - t0))
    print(f"batch 1 at {size}: median {np.median(times):.2f} ms over {len(times)} calls (profiling on)")


if __name__ == "__main__":
    main(sys.argv[1], *(int(v) for v in sys.argv[2:3]))
