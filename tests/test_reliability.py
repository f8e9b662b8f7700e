"""A run killed from outside and resumed equals the uninterrupted run, with random augmentation, drop path and a
loader worker; checkpoint writes leave no temporary files behind."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import paddle
import pytest

from edgevit_paddle.config import load_config
from edgevit_paddle.data import build_dataset
from edgevit_paddle.data.datasets import sample_seed

from conftest import ROOT

AUGMENTED = ["Data.dataset=digits", "Data.image_size=32", "Data.Train.max_samples=128", "Data.Eval.max_samples=32",
             "Data.Train.batch_size=16", "Data.Eval.batch_size=16", "Global.epochs=3", "Data.num_workers=1",
             "Model.drop_path_rate=0.1", "Optimizer.Scheduler.warmup_epochs=1",
             "Data.Train.transforms=[{RandomResizedCrop: {size: 32, scale: [0.5, 1.0]}}, {RandomHorizontalFlip: {}}, "
             "{ToTensor: {}}]"]


def train_cmd(out, *more):
    return [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-o", f"Global.output_dir={out}",
            "-o", "Global.run_name=aug", *[a for kv in AUGMENTED for a in ("-o", kv)], *more]


def weights(run):
    return paddle.load(str(run / "checkpoints" / "epoch_3.pdparams"))


def test_random_transforms_are_a_function_of_seed_epoch_and_sample():
    cfg = load_config(None, ["Model.name=edgevit_xxs", *AUGMENTED])
    ds = build_dataset(cfg["Data"], "Train")
    a, b = ds[(2, 5)][0], ds[(2, 5)][0]
    np.testing.assert_array_equal(a, b)  # the same (epoch, sample): the same crop and flip
    assert not np.array_equal(a, ds[(3, 5)][0])  # another epoch: another augmentation
    state = np.random.get_state()[1].copy()
    ds[(4, 7)]
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # the global generators are given back
    assert sample_seed(42, 1, 2) != sample_seed(42, 2, 1) != sample_seed(43, 1, 2)


def test_kill_9_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path):
    straight = subprocess.run(train_cmd(tmp_path / "a"), capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr[-2000:]

    run = tmp_path / "b" / "aug"
    proc = subprocess.Popen(train_cmd(tmp_path / "b"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    latest = run / "checkpoints" / "latest.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["epochs_done"] == 1:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # into epoch 2
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the trainer and its loader worker, as a scheduler or the OOM killer would
    proc.wait()
    done = json.loads(latest.read_text())["epochs_done"]
    assert done in (1, 2) and not (run / "checkpoints" / "epoch_3.pdparams").exists()

    resumed = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--resume", str(run)],
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    want, got = weights(tmp_path / "a" / "aug"), weights(run)
    worst = max(float(np.abs(got[k].numpy() - want[k].numpy()).max()) for k in want)
    assert worst < 1e-5, worst
    a = json.loads((tmp_path / "a" / "aug" / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert b["final_top1"] == pytest.approx(a["final_top1"]) and b["global_step"] == a["global_step"] == 24
    assert [h["train"]["loss"] for h in b["history"]] == pytest.approx([h["train"]["loss"] for h in a["history"]])
