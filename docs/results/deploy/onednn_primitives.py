"""What oneDNN itself runs inside Paddle Inference (CPU, oneDNN, as our backend configures it) for one forward: each
primitive kind and implementation, its calls and summed time (``ONEDNN_VERBOSE=1``), against the forward's wall time
without verbose output. The gap between the two is Paddle's own per-op work (op dispatch, layout transfers, native
kernels).

    python tools/export.py --model edgevit_xxs --out MODEL --format paddle
    python docs/results/deploy/onednn_primitives.py MODEL [BATCH]
"""
import collections
import os
import subprocess
import sys
import time

import numpy as np


def forward_times(model_dir, batch, runs, mark=False):
    from edgevit_paddle import paddle_noise  # noqa: F401  (Paddle imported quietly)
    from edgevit_paddle.inference import PredictorOptions
    from edgevit_paddle.inference.paddle_backend import config_calls
    import paddle.inference as pi
    cfg = pi.Config(f"{model_dir}/inference.json", f"{model_dir}/inference.pdiparams")
    for name, args in config_calls(PredictorOptions(cpu_threads=2)):
        getattr(cfg, name)(*args)
    predictor = pi.create_predictor(cfg)
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    x = np.random.RandomState(0).rand(batch, 3, 224, 224).astype("float32")
    handle.reshape(x.shape)
    handle.copy_from_cpu(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        predictor.run()
        times.append(time.perf_counter() - start)
        if mark:
            print("=== forward", flush=True)
    return times


def main(model_dir, batch=1):
    if os.environ.get("ONEDNN_VERBOSE") == "1":  # the child: 10 forwards, the last 5 read
        forward_times(model_dir, batch, 10, mark=True)
        return
    wall = 1000 * float(np.median(forward_times(model_dir, batch, 30)[10:]))
    out = subprocess.run([sys.executable, __file__, model_dir, str(batch)], env=dict(os.environ, ONEDNN_VERBOSE="1"),
                         capture_output=True, text=True, check=True).stdout
    last = out.split("=== forward")[-6:-1]  # the lines of the last 5 forwards, averaged
    total, calls = collections.Counter(), collections.Counter()
    for line in "".join(last).splitlines():
        f = line.split(",")
        if len(f) > 6 and f[2] == "primitive" and f[3] == "exec":
            key = f"{f[5]} {f[6]}"
            total[key] += float(f[-1]) / len(last)
            calls[key] += 1 / len(last)
    print(f"EdgeViT model {model_dir}, batch {batch} at 224: forward {wall:.2f} ms (median, no verbose); "
          f"oneDNN primitives of one forward {sum(total.values()):.2f} ms in {sum(calls.values()):.0f} calls")
    for key, ms in total.most_common():
        print(f"  {ms:7.3f} ms {calls[key]:4.0f}  {key}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
