"""How the INT8 default was chosen: ONNX Runtime static quantisation settings compared on the 1,020 Flowers-102 test
images (top-1 agreement with fp32) and timed at batch 8, 128 px. Evidence for README "Deploy" (results in
int8_settings.md), not part of the package.

    RUN=output/<trained flowers run> python docs/results/deploy/int8_settings.py [CALIB_IMAGES]

RUN must hold the run's config.yaml and its export (tools/export.py ... --weights RUN/checkpoints/best).
"""
import logging
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgevit_paddle.config import load_config
from edgevit_paddle.export.exporter import _eval_batches
from edgevit_paddle.export.onnx import _Batches

SETTINGS = {
    "qdq_all_minmax": dict(),
    "qdq_convmatmul_minmax": dict(op_types_to_quantize=["Conv", "MatMul"]),
    "qdq_conv_minmax": dict(op_types_to_quantize=["Conv"]),
    "qdq_convmatmul_percentile": dict(op_types_to_quantize=["Conv", "MatMul"],
                                      calibrate_method=CalibrationMethod.Percentile),
    "qdq_conv_entropy": dict(op_types_to_quantize=["Conv"], calibrate_method=CalibrationMethod.Entropy),
    "qop_conv_minmax": dict(op_types_to_quantize=["Conv"], quant_format=QuantFormat.QOperator),
}


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def top1(sess, images, batch=60):
    return np.concatenate([sess.run(None, {"x": images[i:i + batch]})[0]
                           for i in range(0, len(images), batch)]).argmax(1)


def ms_at_batch_8(sess, images):
    x = images[:8]
    for _ in range(3):
        sess.run(None, {"x": x})
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        sess.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    return round(1000 * float(np.median(times)), 1)


def main(run, calib_images):
    ort.set_default_logger_severity(3)
    logging.getLogger().setLevel(logging.ERROR)
    cfg = load_config(os.path.join(run, "config.yaml"))
    test = np.concatenate(_eval_batches(cfg, "Eval", 1020, 60))
    calibration = _eval_batches(cfg, "Train", calib_images)
    fp32_path = os.path.join(run, "inference", "inference.onnx")
    fp32 = session(fp32_path)
    want = top1(fp32, test)
    print(f"fp32: batch 8 at 128 px {ms_at_batch_8(fp32, test)} ms")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, "prepared.onnx")
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        for name, changes in SETTINGS.items():
            args = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
            args.update(changes)
            out = os.path.join(tmp, f"{name}.onnx")
            quantize_static(prepared, out, _Batches(calibration, "x"), **args)
            sess = session(out)
            agreement = 100 * float((top1(sess, test) == want).mean())
            print(f"{name}: top-1 agreement {agreement:.2f}%, batch 8 at 128 px {ms_at_batch_8(sess, test)} ms",
                  flush=True)


if __name__ == "__main__":
    main(os.environ.get("RUN", "output/edgevit_xxs_flowers102_strong"), int(sys.argv[1]) if len(sys.argv) > 1 else 128)
