"""tools/benchmark.py: the --quick mode writes the CSV, table and plots; ratios; curves; bad arguments."""
import csv
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from edgevit_paddle.benchmark import COLUMNS, add_ratios

TOOL = os.path.join(ROOT, "tools", "benchmark.py")


def consistent(rows, baseline=None):
    """Each row's statistics agree with each other (no time is asserted): p10 <= median <= p90, images/s from the
    median and the batch, and a speed-up that is the baseline's median over the row's."""
    for r in rows:
        med = float(r["median_ms"])
        assert float(r["p10_ms"]) <= med <= float(r["p90_ms"]), r
        assert float(r["images_per_sec"]) == pytest.approx(int(r["batch"]) * 1000 / med, rel=0.01, abs=0.01), r
        if baseline is not None:
            assert float(r["speedup"]) == pytest.approx(float(baseline["median_ms"]) / med, rel=0.01, abs=0.001), r
    return True


def test_quick_mode_writes_results(tmp_path):
    res = subprocess.run([sys.executable, TOOL, "--quick", "--baseline", "model=vit_mnist", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert set(COLUMNS) <= set(rows[0]) and "speedup" in rows[0]
    # 2 models x (eval, predictor, onnxruntime at batch 1 and 2 + train at batch 2)
    assert len(rows) == 14
    assert {r["mode"] for r in rows} == {"eval", "predictor", "onnxruntime", "train"}
    assert consistent(rows)
    edge = [r for r in rows if r["model"] == "edgevit_xxs"]
    assert {(r["norm"], r["ffn"]) for r in edge} == {("gn", "conv")} and edge[0]["params"] == "4067704"
    assert all(r["speedup"] == "1.0" for r in rows if r["model"] == "vit_mnist")
    for f in ("results.md", "machine.json", "latency_vs_batch.png", "throughput.png"):
        assert (tmp_path / f).stat().st_size > 0
    machine = json.loads((tmp_path / "machine.json").read_text())
    assert machine["cores"] >= 1 and machine["threads"] == 2 and machine["paddle"]
    table = (tmp_path / "results.md").read_text()  # one column per switch of the models' families
    assert "| model | norm | ffn_norm | ffn | mode |" in table and "| edgevit_xxs | gn | - | conv | eval |" in table


def test_ratios():
    rows = [dict(model="m", norm="ln", ffn="linear", batch=1, size=8, mode="eval", median_ms=10.0),
            dict(model="m", norm="gn", ffn="conv", batch=1, size=8, mode="eval", median_ms=5.0),
            dict(model="m", norm="gn", ffn="conv", batch=2, size=8, mode="eval", median_ms=5.0)]
    add_ratios(rows, {"norm": "ln", "ffn": "linear"})
    assert [r["speedup"] for r in rows] == [1.0, 2.0, None]


def test_curves_and_bad_arguments(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"history": [
        {"epoch": 1, "train": {}, "eval": {"acc_top1": 0.5}}, {"epoch": 2, "train": {}, "eval": {"acc_top1": 0.7}}]}))
    res = subprocess.run([sys.executable, TOOL, "--curves", str(run), "--out", str(tmp_path / "c")],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0 and (tmp_path / "c" / "accuracy_vs_epoch.png").stat().st_size > 0
    for args, text in [(["--models", "edgevit_xxxs"], "unknown model(s) edgevit_xxxs"),
                       (["--variants", "gn-mlp"], "give norm-ffn values such as gn-conv"),
                       (["--curves", str(tmp_path)], "no metrics.json")]:
        res = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, cwd=ROOT)
        assert res.returncode == 2 and res.stderr.startswith("error: ") and text in res.stderr, res.stderr


@pytest.mark.xdist_group("paddle_launcher")  # one launcher at a time: each opens ports on this machine
def test_data_parallel_training_mode(tmp_path):
    """--train-procs 2 times training data parallel over two CPU processes (Paddle's launcher, gloo all-reduce):
    one row per process count, the global batch split between them, ratios against one process."""
    res = subprocess.run([sys.executable, TOOL, "--models", "vit_mnist", "--modes", "train", "--batch-sizes", "4",
                          "--train-procs", "1", "2", "--runs", "2", "--warmup", "1", "--baseline", "procs=1",
                          "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["mode"], r["procs"], r["batch"], r["threads"]) for r in rows] == [("train", "1", "4", "2"),
                                                                               ("train", "2", "4", "1")]
    assert rows[0]["speedup"] == "1.0" and consistent(rows, baseline=rows[0])
    assert "| train x2 procs | 4 |" in (tmp_path / "results.md").read_text()
    res = subprocess.run([sys.executable, TOOL, "--models", "vit_mnist", "--modes", "train", "--batch-sizes", "3",
                          "--train-procs", "2"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2 and "does not split evenly over 2 processes" in res.stderr, res.stderr


def test_every_deployment_mode(tmp_path):
    """The Paddle predictor (folded, unfolded, oneDNN off), ONNX Runtime and OpenVINO (fp32, INT8) in one run."""
    from edgevit_paddle.benchmark.cases import deploy_modes
    modes = [m for m in deploy_modes() if m != "predictor_bf16"]  # bf16: its own test, where the CPU has it
    res = subprocess.run([sys.executable, TOOL, "--models", "vit_mnist", "--modes", *modes, "--batch-sizes", "2",
                          "--runs", "2", "--warmup", "1", "--baseline", "mode=predictor", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["mode"] for r in rows] == modes and rows[0]["speedup"] == "1.0" and consistent(rows, baseline=rows[0])


def test_bf16_predictor_mode(tmp_path):
    from edgevit_paddle.inference import cpu_supports_bf16
    if not cpu_supports_bf16():
        pytest.skip("this CPU has no AVX512-BF16/AMX")
    res = subprocess.run([sys.executable, TOOL, "--models", "vit_mnist", "--modes", "predictor", "predictor_bf16",
                          "--batch-sizes", "2", "--runs", "2", "--warmup", "1",
                          "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["mode"] for r in rows] == ["predictor", "predictor_bf16"] and consistent(rows)


def test_ratios_per_variant_against_one_process():
    rows = [dict(model="m", norm=n, ffn="conv", batch=4, size=8, mode="train", procs=p, median_ms=ms)
            for n, p, ms in (("gn", 1, 10.0), ("gn", 2, 5.0), ("bn", 1, 8.0), ("bn", 2, 2.0))]
    add_ratios(rows, {"procs": 1})
    assert [r["speedup"] for r in rows] == [1.0, 2.0, 1.0, 4.0]
