"""Top-1 agreement of the INT8 export with fp32, through ONNX Runtime and through OpenVINO, on the real eval split of
a trained run (the quickstart's 359 digit images).

    python tools/train.py -o Global.output_dir=OUT                 # the quickstart, 12 epochs
    python tools/export.py -c OUT/quickstart/config.yaml --weights OUT/quickstart/checkpoints/best --int8 --out MODEL
    python docs/results/deploy/int8_agreement.py OUT/quickstart/config.yaml MODEL
"""
import sys

import numpy as np

from edgevit_paddle.config import load_config
from edgevit_paddle.export.exporter import _eval_batches
from edgevit_paddle.inference import Predictor, PredictorOptions


def main(config, model_dir):
    x = np.concatenate(_eval_batches(load_config(config), "Eval", 10 ** 6))
    preds = {(b, p): Predictor(model_dir, PredictorOptions(backend=b, precision=p, batch_size=64))
             for b in ("onnxruntime", "openvino") for p in ("fp32", "int8")}
    out = {k: np.concatenate([p.run(x[i:i + 64]) for i in range(0, len(x), 64)]) for k, p in preds.items()}
    ref = out[("onnxruntime", "fp32")].argmax(1)
    print(f"{len(x)} eval images of {config}")
    for (b, p), probs in out.items():
        top1 = probs.argmax(1)
        print(f"{b:12s} {p}: top-1 agreement with ONNX Runtime fp32 {100 * (top1 == ref).mean():.2f}% "
              f"({int((top1 != ref).sum())} differ), max probability difference "
              f"{np.abs(probs - out[('onnxruntime', 'fp32')]).max():.4f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
