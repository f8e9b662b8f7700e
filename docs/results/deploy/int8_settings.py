"""How the INT8 default was chosen: ONNX Runtime static quantisation settings compared on the 1,020 Flowers-102 test
images (top-1 agreement with fp32) and at batch 8, 128 px. Evidence for README "Deploy", not part of the package.

    python docs/results/deploy/int8_settings.py [CALIB_IMAGES]   (needs a trained run, see RUN below)
"""
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgevit_paddle.config import load_config
from edgevit_paddle.export.exporter import _eval_batches
from edgevit_paddle.export.onnx import _Batches

ort.set_default_logger_severity(3); logging.getLogger().setLevel(logging.WARNING)
RUN = os.environ.get("RUN", "output/edgevit_xxs_flowers102_strong")  # a trained run, exported with --int8
M = os.path.join(RUN, "inference")
cfg = load_config(os.path.join(RUN, "config.yaml"))
test = np.concatenate(_eval_batches(cfg, "Eval", 1020, 60))
calib = _eval_batches(cfg, "Train", int(sys.argv[1]) if len(sys.argv) > 1 else 128)
def sess(p):
    so = ort.SessionOptions(); so.intra_op_num_threads = 2; so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
ref = sess(M + "/inference.onnx"); ref_top = np.concatenate([ref.run(None, {"x": test[i:i+60]})[0] for i in range(0, 1020, 60)]).argmax(1)
pre = "/tmp/q_pre.onnx"; quant_pre_process(M + "/inference.onnx", pre, skip_symbolic_shape=True)
def bench(s):
    x = test[:8]; [s.run(None, {"x": x}) for _ in range(3)]; ts=[]
    for _ in range(15):
        t=time.perf_counter(); s.run(None, {"x": x}); ts.append(time.perf_counter()-t)
    return round(1000*np.median(ts),1)
print("fp32 b8@128 ms", bench(ref))
configs = {
  "qdq_all_minmax": dict(),
  "qdq_convmatmul_minmax": dict(op_types_to_quantize=["Conv", "MatMul"]),
  "qdq_conv_minmax": dict(op_types_to_quantize=["Conv"]),
  "qdq_convmatmul_percentile": dict(op_types_to_quantize=["Conv", "MatMul"], calibrate_method=CalibrationMethod.Percentile),
  "qdq_conv_entropy": dict(op_types_to_quantize=["Conv"], calibrate_method=CalibrationMethod.Entropy),
  "qop_conv_minmax": dict(op_types_to_quantize=["Conv"], quant_format=QuantFormat.QOperator),
}
for name, kw in configs.items():
    out = f"/tmp/q_{name}.onnx"
    args = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    args.update(kw)
    try:
        quantize_static(pre, out, _Batches(calib, "x"), **args)
    except Exception as e:
        print(name, "FAIL", str(e)[:100]); continue
    s = sess(out)
    top = np.concatenate([s.run(None, {"x": test[i:i+60]})[0] for i in range(0, 1020, 60)]).argmax(1)
    print(name, "agreement", round(100*(top == ref_top).mean(), 2), "b8@128 ms", bench(s), flush=True)
