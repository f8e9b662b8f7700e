"""Top-1 agreement of every backend and precision of the table (CPU, installed, its files exported) with the Paddle
predictor at fp32, on the real eval split of a trained run (the quickstart's 359 digit images).

    python tools/train.py -o Global.output_dir=OUT                 # the quickstart, 12 epochs
    python tools/export.py -c OUT/quickstart/config.yaml --weights OUT/quickstart/checkpoints/best --int8 --out MODEL
    python docs/results/deploy/backend_agreement.py OUT/quickstart/config.yaml MODEL
"""
import sys

import numpy as np

from edgevit_paddle.config import load_config
from edgevit_paddle.errors import PredictorError
from edgevit_paddle.export.exporter import _eval_batches
from edgevit_paddle.inference import Predictor, PredictorOptions, backends


def main(config, model_dir):
    x = np.concatenate(_eval_batches(load_config(config), "Eval", 10 ** 6))
    out, skipped = {}, []
    for b in backends.BACKENDS:
        for p in b.precisions.get("cpu", ()):
            try:
                pred = Predictor(model_dir, PredictorOptions(backend=b.name, precision=p, batch_size=64))
            except PredictorError as e:
                skipped.append(f"{b.name} {p}: {e}")
                continue
            out[(b.name, p)] = np.concatenate([pred.run(x[i:i + 64]) for i in range(0, len(x), 64)])
    ref = out[("paddle", "fp32")]
    print(f"{len(x)} eval images of {config}; reference: Paddle Inference fp32 (top-1 accuracy of the reference "
          f"against the labels is not measured here)")
    for (b, p), probs in out.items():
        top1 = probs.argmax(1)
        print(f"{b:12s} {p}: top-1 agreement {100 * (top1 == ref.argmax(1)).mean():.2f}% "
              f"({int((top1 != ref.argmax(1)).sum())} differ), max probability difference "
              f"{np.abs(probs - ref).max():.2e}")
    for line in skipped:
        print(f"not run: {line}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
