"""The deployment evidence in one run: the EdgeViT authors' XXS (their structure, ``original_in_onnxruntime.py``)
in ONNX Runtime (its default spinning threads, and spinning off) and in OpenVINO (as read, and compiled per batch
size), beside ours (gn/conv, ln/linear, bn/conv, random weights, ``tools/export.py --model``) in every CPU backend of
our ``Predictor``: ONNX Runtime (spinning off, our default, and on), OpenVINO, Paddle Inference (oneDNN). 224x224,
fp32, batch 1 and 8, 2 threads; on CPUs with AVX512-BF16/AMX also OpenVINO in bfloat16, the authors' file and ours.

Not part of the package (it needs torch: ``pip install torch==2.13.0``). torch builds the authors' model, checks it
against their reference logits and exports it to ONNX (no Paddle imported). Then each runtime setting is timed in
its own process (threads left spinning by one runtime slowed the next one in the same process, and oneDNN's slowed
ONNX Runtime), the original and our three variants in turn within it, in blocks of 4 calls with the first dropped;
the processes alternate, ``--passes`` times each.

    python docs/results/deploy/side_by_side.py OUT_DIR [--runs 10] [--passes 2] [--batches 1 8]

Writes ``OUT_DIR/results.md`` (the table, ratios against the original's fastest runtime per batch, the CPU) and
``OUT_DIR/results.json``.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
VARIANTS = (("gn", "conv"), ("ln", "linear"), ("bn", "conv"))


def export_original(out_dir):
    import torch
    sys.path.insert(0, HERE)
    from original_in_onnxruntime import checked_onnx
    _, err = checked_onnx(out_dir)
    return {"parity_rel_err": err, "torch": torch.__version__}


def _rounds(runners, batches, runs, block=4, warmup=3):
    """Median ms of each (runner, batch): ``runs`` rounds, each running every runner in turn for ``block``
    consecutive calls per batch, the first of which is dropped (ONNX Runtime's spinning threads of the runner before
    still hold the cores for a moment; a deployment calls one model again and again)."""
    import numpy as np
    xs = {b: np.random.RandomState(0).standard_normal([b, 3, 224, 224]).astype(np.float32) for b in batches}
    for run in runners.values():
        for x in xs.values():
            for _ in range(warmup):
                run(x)
    times = {(n, b): [] for n in runners for b in xs}
    for _ in range(runs):
        for n, run in runners.items():
            for b, x in xs.items():
                for i in range(block):
                    t0 = time.perf_counter()
                    run(x)
                    if i:
                        times[(n, b)].append(time.perf_counter() - t0)
    return {f"{n}|{b}": [1000 * v for v in t] for (n, b), t in times.items()}


def _original_runner(path, runtime):
    """The authors' ONNX file as its user would run it: ONNX Runtime (spinning on, its default, or off), OpenVINO
    (as read: dynamic batch; or compiled for each batch size's static shape, as our backend does)."""
    if runtime.startswith("onnxruntime"):
        import onnxruntime as ort
        ort.set_default_logger_severity(3)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 2, 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if "spinning" in runtime else "0")
        s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return lambda x: s.run(None, {"x": x})[0]
    import openvino as ov
    core = ov.Core()
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": "2",
              "INFERENCE_PRECISION_HINT": "bf16" if "bf16" in runtime else "f32"}
    if runtime == "openvino":
        req = core.compile_model(path, "CPU", config).create_infer_request()
        return lambda x: req.infer({0: x})
    static = {}

    def run(x):
        if x.shape[0] not in static:
            model = core.read_model(path)
            model.reshape({model.inputs[0].any_name: ov.PartialShape(list(x.shape))})
            static[x.shape[0]] = core.compile_model(model, "CPU", config).create_infer_request()
        static[x.shape[0]].infer({0: x})
    return run


#: each step's process: the runtimes it times, the original's and ours (our Predictor's backend, ort_spin, precision)
STEPS = {"onnxruntime": (["onnxruntime"], ("onnxruntime", False, "fp32")),
         "onnxruntime_spin": (["onnxruntime (spinning)"], ("onnxruntime", True, "fp32")),
         "openvino": (["openvino", "openvino (static shapes)"], ("openvino", False, "fp32")),
         "paddle": ([], ("paddle", False, "fp32")),
         "openvino_bf16": (["openvino bf16 (static shapes)"], ("openvino", False, "bf16"))}
OUR_NAMES = {("onnxruntime", False, "fp32"): "onnxruntime", ("onnxruntime", True, "fp32"): "onnxruntime (spinning)",
             ("openvino", False, "fp32"): "openvino (static shapes)", ("paddle", False, "fp32"): "paddle inference",
             ("openvino", False, "bf16"): "openvino bf16 (static shapes)"}


def steps():
    """The steps this CPU runs (bfloat16 only where it has AVX512-BF16 or AMX)."""
    bf16 = bool({"avx512_bf16", "amx_bf16"} & set(_flags()))
    return [s for s in STEPS if bf16 or "bf16" not in s]


def time_step(out_dir, step, batches, runs):
    from edgevit_paddle.inference import Predictor, PredictorOptions
    theirs, (backend, spin, precision) = STEPS[step]
    runners = {f"original|{rt}": _original_runner(os.path.join(out_dir, "original_xxs.onnx"), rt) for rt in theirs}
    for norm, ffn in VARIANTS:
        pred = Predictor(os.path.join(out_dir, f"{norm}_{ffn}"),
                         PredictorOptions(backend=backend, cpu_threads=2, ort_spin=spin, precision=precision))
        runners[f"ours {norm}/{ffn}|{OUR_NAMES[backend, spin, precision]}"] = pred.run
    return _rounds(runners, batches, runs)


def _flags():
    return next((ln.split(":", 1)[1].split() for ln in open("/proc/cpuinfo") if ln.startswith("flags")), [])


def _cpu():
    model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    family = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("cpu family")), "?")
    flags = _flags()
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} (family {family}), {os.cpu_count()} cores, {'+'.join(isa)}"


def report(out_dir, meta, times, batches):
    rows = sorted({k.rsplit("|", 1)[0] for k in times}, key=lambda r: (not r.startswith("original"), r))
    best = {b: min(v for k, v in times.items() if k.startswith("original|") and k.endswith(f"|{b}") and "bf16" not in k)
            for b in batches}
    lines = [f"Machine: {meta['cpu']}; Python {platform.python_version()}; {meta['versions']}; "
             f"{meta['date']}. 224x224 fp32 (bf16 where the runtime says so), 2 threads; "
             f"median ms of {meta['passes']} passes x {meta['runs']} rounds "
             "x 3 calls after warm-up (each runtime setting in its own process, the processes alternating). "
             f"Authors' structure reproduces their logits to {meta['parity_rel_err']:.1e} relative. Ratio: the "
             "original's fastest fp32 runtime at that batch over the row (>1: faster than it).", "",
             "| model | runtime | " + " | ".join(f"batch {b} ms | ratio" for b in batches) + " |",
             "| --- | --- | " + " | ".join("---: | ---:" for _ in batches) + " |"]
    for r in rows:
        model, runtime = r.split("|")
        cells = [f"{times[f'{r}|{b}']:.2f} | {best[b] / times[f'{r}|{b}']:.2f}x" for b in batches]
        lines.append(f"| {model} | {runtime} | " + " | ".join(cells) + " |")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({**meta, "median_ms": times}, f, indent=1)
    print("\n".join(lines))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--runs", type=int, default=10, help="rounds (each: blocks of 4 calls, the first dropped)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--passes", type=int, default=2, help="times each step's process runs, steps alternating")
    p.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.step:  # a child process: print its timings
        print(json.dumps(time_step(a.out, a.step, a.batches, a.runs)))
        return
    os.makedirs(a.out, exist_ok=True)
    meta = export_original(a.out)
    for norm, ffn in VARIANTS:
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export.py"), "--model", "edgevit_xxs",
                        "--norm", norm, "--ffn", ffn, "--format", "all", "--out", os.path.join(a.out, f"{norm}_{ffn}")],
                       check=True, stdout=subprocess.DEVNULL)
    raw = {}
    for _ in range(a.passes):
        for step in steps():
            res = subprocess.run([sys.executable, __file__, a.out, "--runs", str(a.runs), "--step", step,
                                  "--batches", *map(str, a.batches)], check=True, capture_output=True, text=True)
            for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items():
                raw.setdefault(k, []).extend(v)
    import numpy as np
    times = {k: float(np.median(v)) for k, v in raw.items()}
    from importlib.metadata import version
    meta.update(cpu=_cpu(), runs=a.runs, passes=a.passes, date=time.strftime("%Y-%m-%d %H:%M"),
                versions=f"torch {meta.pop('torch')}, ONNX Runtime {version('onnxruntime')}, OpenVINO "
                         f"{version('openvino')}, Paddle {version('paddlepaddle')}")
    report(a.out, meta, times, a.batches)


if __name__ == "__main__":
    main()
