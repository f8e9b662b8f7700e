"""Kill ``tools/export.py`` with SIGKILL at random moments while it exports checkpoint B into a folder that holds an
export of checkpoint A, then check the folder: it must load and predict with one consistent set of files (both
backends equal to the dygraph model of the checkpoint its ``inference.yml`` names). Evidence for docs/RELIABILITY.md;
``tests/test_reliability.py`` runs two kills of it.

    python docs/results/reliability/kill_during_export.py OUT_DIR [KILLS [MIN_S MAX_S]]
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import paddle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)
TINY = ["Model.name=edgevit_xxs", "Data.dataset=digits", "Data.image_size=32", "Data.Train.max_samples=16",
        "Data.Eval.max_samples=16", "Data.Train.batch_size=8", "Data.Eval.batch_size=8", "Global.verbose=0",
        "Global.use_visualdl=false", "Data.Train.transforms=[{Resize: {size: [32, 32]}}, {ToTensor: {}}]",
        "Data.Eval.transforms=[{Resize: {size: [32, 32]}}, {ToTensor: {}}]"]


def two_checkpoints(out):
    """Checkpoints A (epoch 1) and B (epoch 2) of one tiny run: same model, different weights."""
    from edgevit_paddle.config import load_config
    from edgevit_paddle.engine import train
    train(load_config(None, TINY + [f"Global.output_dir={out}", "Global.run_name=run", "Global.epochs=2",
                                    "Global.keep_checkpoints=2", "Optimizer.lr=0.01"]))
    ckpt = os.path.join(out, "run", "checkpoints")
    return os.path.join(out, "run", "config.yaml"), os.path.join(ckpt, "epoch_1"), os.path.join(ckpt, "epoch_2")


def export_cmd(config, weights, folder):
    return [sys.executable, os.path.join(ROOT, "tools", "export.py"), "-c", config, "--weights", weights,
            "--out", folder, "--format", "all"]


def check_folder(folder, config):
    """What the folder holds, and whether it is one consistent export (raises AssertionError if not)."""
    import yaml

    from edgevit_paddle.builder import build_model_from_config
    from edgevit_paddle.config import load_config
    from edgevit_paddle.inference import Predictor, PredictorOptions
    with open(os.path.join(folder, "inference.yml"), encoding="utf-8") as f:
        weights = yaml.safe_load(f)["weights"]
    x = np.random.RandomState(0).standard_normal([2, 3, 32, 32]).astype("float32")
    net = build_model_from_config(load_config(config), weights=weights)
    net.eval()
    with paddle.no_grad():  # log-probabilities: the program ends in a softmax; logs keep the logits' differences
        ref = paddle.nn.functional.log_softmax(net(paddle.to_tensor(x)), axis=-1).numpy()
    out = {}
    for backend in ("paddle", "onnxruntime"):
        got = np.log(Predictor(folder, PredictorOptions(backend=backend, cpu_threads=1)).probabilities(x))
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), (backend, weights)
        out[backend] = float(np.abs(got - ref).max())
    return {"weights": os.path.basename(weights), "files": sorted(os.listdir(folder)), "max_diff": out,
            "beside": sorted(f for f in os.listdir(os.path.dirname(folder)) if f.startswith("."))}


def battery(out, kills=20, low=1.0, high=9.0, seed=0, prepared=None):
    """``kills`` exports killed at random moments; ``prepared``: (config, checkpoint A, checkpoint B, a folder
    holding an export of A) to start from, instead of training and exporting them here."""
    if prepared is None:
        config, a, b = two_checkpoints(out)
        folder = os.path.join(out, "export")
        subprocess.run(export_cmd(config, a, folder), check=True, capture_output=True)
    else:
        config, a, b, folder = prepared
    rng = random.Random(seed)
    rows = []
    for i in range(kills):
        wait = rng.uniform(low, high)
        proc = subprocess.Popen(export_cmd(config, b if i % 2 == 0 else a, folder), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(wait)
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        rows.append({"kill": i + 1, "after_s": round(wait, 2), "had_finished": finished,
                     **check_folder(folder, config)})
    return rows


if __name__ == "__main__":
    out = sys.argv[1]
    args = [float(v) for v in sys.argv[2:]]
    kills = int(args[0]) if args else 20
    low, high = (args[1], args[2]) if len(args) > 2 else (1.0, 9.0)
    for row in battery(out, kills, low, high):
        print(json.dumps(row), flush=True)
