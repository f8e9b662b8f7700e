"""The authors' EdgeViT-XXS and ours in the mobile runtimes, converted the same way, timed side by side on this x86
machine (x86 timings only: no phone ran here).

The authors' ONNX file comes from ``original_in_onnxruntime.py`` (it needs torch, in a separate environment: it
reproduces their reference logits to ~2e-7 before exporting). Each file is converted by our export's own converters
(``export/edge.py``: MNN's converter with the exact GELU, pnnx for ncnn at 224), checked against ONNX Runtime on the
same file, and timed through the runtimes' own Python APIs (2 threads, fp32), the models interleaved per round.

    /path/to/torch-env/bin/python -c "import sys; sys.path.insert(0, 'docs/results/deploy'); \\
        from original_in_onnxruntime import checked_onnx; print(checked_onnx('ORIG'))"
    python docs/results/deploy/original_on_edge.py ORIG/original_xxs.onnx OUT [--runs 15]
"""
import argparse
import os
import shutil
import time

import numpy as np
import onnxruntime as ort

from edgevit_paddle.export import edge, export_registered
from edgevit_paddle.inference import model_folder

VARIANTS = (("gn", "conv"), ("ln", "linear"), ("bn", "conv"))


def _mnn(path, names):
    import MNN
    rt = MNN.nn.create_runtime_manager(({"backend": "CPU", "numThread": 2, "precision": "high"},))
    module = MNN.nn.load_module_from_file(path, [names[0]], [names[1]], runtime_manager=rt)
    F = MNN.expr
    return lambda x: np.array(F.convert(module.forward(F.const(x, list(x.shape), F.NCHW)), F.NCHW).read())


def _ncnn(param, weights):
    import ncnn
    net = ncnn.Net()
    net.opt.num_threads = 2
    net.load_param(param)
    net.load_model(weights)

    def run(x):
        out = []
        for image in x:
            with net.create_extractor() as ex:
                ex.input("in0", ncnn.Mat(image[None], batch_index=0).clone())
                _, mat = ex.extract("out0")
                out.append(np.array(mat.numpy(batch_index=0)).reshape(-1))
        return np.stack(out)
    return run


def main():
    p = argparse.ArgumentParser()
    p.add_argument("original_onnx")
    p.add_argument("out")
    p.add_argument("--runs", type=int, default=15)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    folders = {}
    orig = os.path.join(args.out, "original")
    os.makedirs(orig, exist_ok=True)
    shutil.copy(args.original_onnx, model_folder.path(orig, "onnx"))
    edge.to_mnn(orig)
    edge.to_ncnn(orig, (3, 224, 224))
    folders["original"] = (orig, ("x", "logits"))
    for norm, ffn in VARIANTS:
        d = os.path.join(args.out, f"ours_{norm}_{ffn}")
        export_registered("edgevit_xxs", d, norm=norm, ffn=ffn)
        mobile = model_folder.read_sidecar(d)["mobile"]["mnn"]
        folders[f"ours {norm}/{ffn}"] = (d, (mobile["input"], mobile["output"]))
    runners = {}
    for name, (d, names) in folders.items():
        onnx_run = ort.InferenceSession(model_folder.path(d, "onnx"))
        runners[(name, "mnn")] = _mnn(model_folder.path(d, "mnn"), names)
        runners[(name, "ncnn")] = _ncnn(model_folder.path(d, "ncnn_param"), model_folder.path(d, "ncnn_bin"))
        x = np.random.RandomState(0).standard_normal([2, 3, 224, 224]).astype(np.float32)
        ref = onnx_run.run(None, {onnx_run.get_inputs()[0].name: x})[0]
        for rt in ("mnn", "ncnn"):
            diff = float(np.abs(runners[(name, rt)](x) - ref).max())
            print(f"check: {name} {rt} vs ONNX Runtime on the same file, max abs difference {diff:.2e}", flush=True)
    results = {}
    for batch in (1, 8):
        x = np.random.RandomState(1).standard_normal([batch, 3, 224, 224]).astype(np.float32)
        times = {k: [] for k in runners}
        for r in range(args.runs + 3):
            for k, run in runners.items():
                t0 = time.perf_counter()
                run(x)
                if r >= 3:
                    times[k].append(1000 * (time.perf_counter() - t0))
        for k, v in times.items():
            results[(k, batch)] = float(np.median(v))
    lines = ["| model | runtime | batch 1 ms | batch 8 ms |", "| --- | --- | ---: | ---: |"]
    for k in runners:
        lines.append(f"| {k[0]} | {k[1]} | {results[(k, 1)]:.2f} | {results[(k, 8)]:.2f} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table + "\n")


if __name__ == "__main__":
    main()
