"""Where the time goes, per operator type, in ONNX Runtime (its profiler, spinning off) and OpenVINO (PERF_COUNT,
f32, static shape) for ONNX files at one batch size, 224x224, 2 threads.

    python docs/results/deploy/profile_runtimes.py BATCH NAME=FILE.onnx [NAME=FILE.onnx ...]

Kernel times summed per operator type over 20 runs after 3 warm-up runs; shares of the summed kernel time (which
leaves out the runtime's own overhead between kernels).
"""
import collections
import json
import os
import sys
import tempfile

import numpy as np

RUNS, WARMUP = 20, 3


def onnxruntime_profile(path, x):
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.enable_profiling = True
    so.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort")
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    for _ in range(WARMUP + RUNS):
        s.run(None, {name: x})
    events = json.load(open(s.end_profiling()))
    total = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            total[e["args"]["op_name"]] += e["dur"] / 1000 / (WARMUP + RUNS)
    return total


def openvino_profile(path, x):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    model.reshape({model.inputs[0].any_name: ov.PartialShape(list(x.shape))})
    req = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": "2",
                                            "INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True}).create_infer_request()
    total = collections.Counter()
    for i in range(WARMUP + RUNS):
        req.infer({0: x})
        if i >= WARMUP:
            for p in req.profiling_info:
                if p.status == p.Status.EXECUTED:
                    total[p.node_type] += p.real_time.total_seconds() * 1000 / RUNS
    return total


def main(batch, specs):
    x = np.random.RandomState(0).standard_normal([batch, 3, 224, 224]).astype(np.float32)
    for spec in specs:
        name, path = spec.split("=", 1)
        for runtime, profile in (("ONNX Runtime", onnxruntime_profile), ("OpenVINO", openvino_profile)):
            total = profile(path, x)
            s = sum(total.values())
            print(f"{name}, {runtime}, batch {batch}: kernels {s:.2f} ms per run")
            for op, ms in total.most_common(12):
                print(f"  {op:30s} {ms:6.3f} ms {100 * ms / s:5.1f}%")


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2:])
