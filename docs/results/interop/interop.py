"""Do PaddleClas's deploy predictor and PaddleX read our export folders as their own? Runs the real clients, not a
re-implementation of them, on the 1,020 Flowers-102 test images (Paddle's 'test' split, the original trnid) and
compares their top-1 with ``tools/infer.py``'s.

    python docs/results/interop/interop.py --paddleclas /path/to/PaddleClas --paddlex-python /path/to/venv/bin/python \
        --model quickstart=output/quickstart --model flowers=output/edgevit_xxs_flowers102

Each ``--model NAME=RUN`` is exported with ``tools/export.py -c RUN/config.yaml --weights RUN/checkpoints/best
--paddlex-name ResNet18`` (PaddleX runs only model names it registers: ResNet18 is one of its image classifiers; the
folder is otherwise what every export writes), then classified by

- ``tools/infer.py --backend paddle`` and ``--backend onnxruntime`` (ours: the reference);
- PaddleClas's ``deploy/python/predict_cls.py -c <export>/inference.yml`` with ``use_onnx: True`` (as it is), and on
  Paddle Inference with PaddleClas's one-line fix for Paddle 3 (``config.enable_new_executor()`` before
  ``enable_memory_optim()``, applied to a copy: without it every PIR model fails, Paddle's own included);
- PaddleX's ``create_model(model_name="ResNet18", model_dir=<export>)`` (in its own environment:
  ``pip install paddlepaddle==3.3.1 paddlex==3.7.2 pypdfium2 opencv-contrib-python``), one image per batch: with a
  larger batch PaddleX 3.7.2 gives every image's result the class ids of the whole batch (its scores are right).

Writes ``interop.json`` and ``interop.md`` beside this script.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import scipy.io

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HERE = os.path.dirname(os.path.abspath(__file__))
FLOWERS = os.path.join(ROOT, "..", "shared", "data", "flowers102")
PADDLEX_NAME = "ResNet18"

PADDLEX_SCRIPT = """
import json, sys, numpy, paddlex
model = paddlex.create_model(model_name=sys.argv[1], model_dir=sys.argv[2], device="cpu")
paths = [line.strip() for line in open(sys.argv[3])]
for res in model.predict(paths, batch_size=1):  # 3.7.2: each result of a larger batch holds all its class_ids
    ids, scores = numpy.asarray(res["class_ids"]).reshape(-1), numpy.asarray(res["scores"]).reshape(-1)
    print("RESULT " + json.dumps({"path": res["input_path"], "class_id": int(ids[0]), "score": float(scores[0])}),
          flush=True)
"""


def test_images(out: str) -> list:
    """The 1,020 trnid images (Paddle's Flowers 'test'), linked into ``out``; returns their paths."""
    jpg = os.path.join(FLOWERS, "102flowers", "jpg")
    if not os.path.isdir(jpg):
        import tarfile
        with tarfile.open(os.path.join(FLOWERS, "102flowers.tgz")) as tar:
            tar.extractall(os.path.join(out, "extracted"), filter="data")
        jpg = os.path.join(out, "extracted", "jpg")
    ids = scipy.io.loadmat(os.path.join(FLOWERS, "setid.mat"))["trnid"].reshape(-1)
    os.makedirs(os.path.join(out, "images"))
    paths = []
    for i in sorted(int(v) for v in ids):
        dst = os.path.join(out, "images", f"image_{i:05d}.jpg")
        os.symlink(os.path.abspath(os.path.join(jpg, f"image_{i:05d}.jpg")), dst)
        paths.append(dst)
    return paths


def run(cmd, **kw) -> str:
    t = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({res.returncode}):\n{res.stderr[-3000:]}")
    print(f"  {os.path.basename(cmd[1])} ({time.time() - t:.0f} s)", file=sys.stderr)
    return res.stdout


def ours(folder: str, images: str, backend: str) -> dict:
    out = run([sys.executable, os.path.join(ROOT, "tools", "infer.py"), "--model-dir", folder, "--backend", backend,
               "--json", "--topk", "1", "--batch-size", "16", images])
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {os.path.basename(r["path"]): (r["topk"][0]["class_id"], r["topk"][0]["score"]) for r in rows}


def paddleclas(checkout: str, folder: str, images: str, onnx: bool, tmp: str) -> dict:
    """PaddleClas's deploy predictor on ``folder``; its code imports itself as the package ``paddleclas``."""
    shim = os.path.join(tmp, "shim")
    if not os.path.isdir(shim):
        copy = os.path.join(tmp, "PaddleClas")
        for part in ("python", "utils"):  # what predict_cls.py imports
            shutil.copytree(os.path.join(checkout, "deploy", part), os.path.join(copy, "deploy", part))
        pred = os.path.join(copy, "deploy", "utils", "predictor.py")
        src = open(pred).read()
        fixed = src.replace("        config.enable_memory_optim()\n",
                            "        config.enable_new_executor()\n        config.enable_memory_optim()\n", 1)
        assert fixed != src, "PaddleClas's predictor changed: check the fix"
        open(pred + ".fixed", "w").write(fixed)
        os.makedirs(shim)
        os.symlink(copy, os.path.join(shim, "paddleclas"))
    pred = os.path.join(tmp, "PaddleClas", "deploy", "utils", "predictor.py")
    if not onnx:
        shutil.copy(pred + ".fixed", pred)
    else:
        shutil.copy(os.path.join(checkout, "deploy", "utils", "predictor.py"), pred)
    deploy = os.path.join(tmp, "PaddleClas", "deploy")
    out = run([sys.executable, os.path.join(deploy, "python", "predict_cls.py"), "-c",
               os.path.join(folder, "inference.yml"), "-o", f"Global.inference_model_dir={folder}",
               "-o", f"Global.infer_imgs={images}", "-o", "Global.batch_size=16", "-o", "PostProcess.main_indicator=Topk",
               "-o", "PostProcess.Topk.topk=1", "-o", f"Global.use_onnx={onnx}"],
              cwd=deploy, env={**os.environ, "PYTHONPATH": shim})
    found = {}
    for m in re.finditer(r"^(\S+):\s+class id\(s\): \[(\d+)\], score\(s\): \[([\d.]+)\]", out, re.M):
        found[m.group(1)] = (int(m.group(2)), float(m.group(3)))
    return found


def paddlex(python: str, folder: str, paths: list, tmp: str) -> dict:
    listing = os.path.join(tmp, "paths.txt")
    with open(listing, "w") as f:
        f.write("\n".join(paths) + "\n")
    script = os.path.join(tmp, "paddlex_predict.py")
    with open(script, "w") as f:
        f.write(PADDLEX_SCRIPT)
    out = run([python, script, PADDLEX_NAME, folder, listing],
              env={**os.environ, "PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True"})
    rows = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    return {os.path.basename(r["path"]): (r["class_id"], r["score"]) for r in rows}


def compare(ref: dict, other: dict) -> dict:
    same = sum(1 for k, (c, _) in ref.items() if k in other and other[k][0] == c)
    diffs = [abs(other[k][1] - s) for k, (c, s) in ref.items() if k in other and other[k][0] == c]
    return {"images": len(ref), "answered": sum(1 for k in ref if k in other), "same_top1": same,
            "agreement": round(same / len(ref), 6), "max_score_diff": round(max(diffs), 6) if diffs else None}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paddleclas", required=True, help="a PaddleClas checkout (its deploy/ is used)")
    p.add_argument("--paddlex-python", required=True, help="the python of an environment with paddlex installed")
    p.add_argument("--model", action="append", required=True, metavar="NAME=RUN", help="a training run to export")
    args = p.parse_args()
    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    results = {"machine": f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores",
               "paddle": subprocess.run([sys.executable, "-c", "import paddle; print(paddle.__version__)"],
                                        capture_output=True, text=True).stdout.strip(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = test_images(tmp)
        images = os.path.join(tmp, "images")
        for item in args.model:
            name, run_dir = item.split("=", 1)
            folder = os.path.join(tmp, f"export_{name}")
            print(f"{name}: exporting {run_dir}", file=sys.stderr)
            run([sys.executable, os.path.join(ROOT, "tools", "export.py"), "-c", os.path.join(run_dir, "config.yaml"),
                 "--weights", os.path.join(run_dir, "checkpoints", "best"), "--out", folder,
                 "--paddlex-name", PADDLEX_NAME])
            ref = ours(folder, images, "paddle")
            clients = {"tools/infer.py --backend onnxruntime": ours(folder, images, "onnxruntime"),
                       "PaddleClas predict_cls.py, use_onnx": paddleclas(args.paddleclas, folder, images, True, tmp),
                       "PaddleClas predict_cls.py, Paddle Inference (+ its one-line fix)":
                           paddleclas(args.paddleclas, folder, images, False, tmp),
                       "PaddleX create_model(ResNet18, model_dir=export)":
                           paddlex(args.paddlex_python, folder, paths, tmp)}
            results["models"][name] = {"run": run_dir, "reference": "tools/infer.py --backend paddle",
                                       "clients": {k: compare(ref, v) for k, v in clients.items()}}
    with open(os.path.join(HERE, "interop.json"), "w") as f:
        json.dump(results, f, indent=1)
    lines = [f"# Our export folders in PaddleClas's and PaddleX's predictors ({time.strftime('%Y-%m-%d')})", "",
             f"Machine: {results['machine']}. Images: the 1,020 Flowers-102 test images (trnid, short side 128 px). "
             "Reference: `tools/infer.py --backend paddle` on the same folder. Made by `interop.py`. PaddleClas "
             "prints scores to 2 decimals and PaddleX rounds them to 5, which bounds the score differences.", "",
             "| model | client | answered | same top-1 | agreement | max top-1 score difference |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for name, m in results["models"].items():
        for client, c in m["clients"].items():
            lines.append(f"| {name} | {client} | {c['answered']} / {c['images']} | {c['same_top1']} | "
                         f"{100 * c['agreement']:.2f}% | {c['max_score_diff']} |")
    with open(os.path.join(HERE, "interop.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
