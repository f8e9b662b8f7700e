"""Training under paddle.Model: files written, VisualDL records, loss going down, resume, Ctrl-C, NaN stop."""
import glob
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import paddle
import pytest
from conftest import ROOT, run_tool

import edgevit_paddle as ep
from edgevit_paddle.config import load_config
from edgevit_paddle.engine import NonFiniteLoss, convert_sync_bn, run_folder, train
from edgevit_paddle.engine import checkpoint as ckpt_mod
from edgevit_paddle.engine import checkpoint_saver as saver_mod
from edgevit_paddle.engine import trainer as trainer_mod

TINY = ["Data.dataset=digits", "Data.image_size=32", "Data.Train.max_samples=64", "Data.Eval.max_samples=32",
        "Data.Train.batch_size=16", "Data.Eval.batch_size=16", "Global.verbose=0", "Global.epochs=2",
        "Optimizer.Scheduler.warmup_epochs=1", "Data.Train.transforms=[{Resize: {size: 32}}, {ToTensor: {}}]",
        "Data.Eval.transforms=[{Resize: {size: 32}}, {ToTensor: {}}]"]


def tiny(tmp_path, *more, model="edgevit_xxs"):
    return load_config(None, [f"Model.name={model}", f"Global.output_dir={tmp_path}", "Global.run_name=tiny",
                              *TINY, *more])


def read_scalars(run_dir, tag):
    from visualdl import LogReader
    files = glob.glob(os.path.join(run_dir, "vdl", "vdlrecords.*.log"))
    assert len(files) == 1, files
    reader = LogReader(file_path=files[0])
    assert tag in reader.get_tags()["scalar"], reader.get_tags()
    return reader.get_data("scalar", tag)


def test_tiny_run_writes_everything(tmp_path):
    metrics = train(tiny(tmp_path))
    run = tmp_path / "tiny"
    for f in ["config.yaml", "train.log", "metrics.json", "checkpoints/epoch_1.pdparams", "checkpoints/epoch_2.pdopt",
              "checkpoints/best.pdparams", "checkpoints/latest.json"]:
        assert (run / f).exists(), f
    saved = json.loads((run / "metrics.json").read_text())
    for key in ["final_top1", "best_top1", "final_top5", "epochs_done", "train_seconds"]:
        assert saved[key] is not None, key
    assert saved["epochs_done"] == 2 and saved == metrics and 0 <= saved["final_top1"] <= 1
    assert "epoch 2/2" in (run / "train.log").read_text()
    loss = read_scalars(str(run), "train/loss")
    assert [r.id for r in loss] == list(range(1, 9)) and all(np.isfinite(r.value) for r in loss)
    lr = read_scalars(str(run), "train/lr")
    assert len(lr) == 8 and lr[0].value < lr[3].value  # linear warm-up over the first epoch
    ev = read_scalars(str(run), "eval/acc_top1")
    assert [r.id for r in ev] == [1, 2]
    assert abs(ev[-1].value - saved["final_top1"]) < 1e-6
    assert len(read_scalars(str(run), "eval/loss")) == 2
    # the same config again never overwrites the first run
    train(tiny(tmp_path, "Global.epochs=1"))
    assert (tmp_path / "tiny-2" / "metrics.json").exists()
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 2


def test_loss_goes_down(tmp_path):
    metrics = train(tiny(tmp_path, "Global.epochs=6", "Optimizer.Scheduler.name=constant",
                         "Optimizer.Scheduler.warmup_epochs=0", "Optimizer.lr=0.001"))
    losses = [h["train"]["loss"] for h in metrics["history"]]  # mean loss of each epoch
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses


def test_seeded_runs_are_reproducible(tmp_path):
    a = train(tiny(tmp_path / "a", "Global.epochs=1"))
    b = train(tiny(tmp_path / "b", "Global.epochs=1"))
    assert a["history"][0]["train"]["loss"] == b["history"][0]["train"]["loss"]


def test_interrupt_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    straight = train(tiny(tmp_path / "a", "Global.epochs=3"))
    ref = paddle.load(str(tmp_path / "a" / "tiny" / "checkpoints" / "epoch_3.pdparams"))

    original = saver_mod.CheckpointSaver.save_epoch

    def save_then_ctrl_c(self, epoch, *args, **kwargs):
        original(self, epoch, *args, **kwargs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(saver_mod.CheckpointSaver, "save_epoch", save_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path / "b", "Global.epochs=3"))
    run = tmp_path / "b" / "tiny"
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["checkpoint"] == "interrupted" and latest["epochs_done"] == 1
    monkeypatch.setattr(saver_mod.CheckpointSaver, "save_epoch", original)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train(run_folder.load_run_config(None, [], str(run)), resume=str(run))
    assert not [w for w in caught if "unused values" in str(w.message)]  # Paddle's spurious LinearWarmup warning
    assert resumed["epochs_done"] == 3 and resumed["global_step"] == straight["global_step"] == 12
    got = paddle.load(str(run / "checkpoints" / "epoch_3.pdparams"))
    assert got.pop("__identity__") == ref.pop("__identity__")  # each weights file says what model it holds
    for k in ref:
        np.testing.assert_allclose(got[k].numpy(), ref[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    assert resumed["final_top1"] == pytest.approx(straight["final_top1"])
    # the VisualDL curve continues in the same record file: steps 1..12 once each... plus the re-run epoch's steps
    ids = [r.id for r in read_scalars(str(run), "eval/acc_top1")]
    assert ids[-2:] == [2, 3]


def test_resume_from_a_finished_run_extends_it(tmp_path):
    train(tiny(tmp_path, "Global.epochs=1"))
    run = str(tmp_path / "tiny")
    opt_before = paddle.load(os.path.join(run, "checkpoints", "epoch_1.pdopt"))
    cfg = run_folder.load_run_config(None, ["Global.epochs=2"], run)
    metrics = train(cfg, resume=run)
    assert metrics["epochs_done"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]
    ids = [r.id for r in read_scalars(run, "train/loss")]
    assert ids == list(range(1, 9))
    assert any("moment1" in k for k in opt_before)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    train(tiny(tmp_path, "Global.epochs=1", "Optimizer.Scheduler.name=constant", "Optimizer.Scheduler.warmup_epochs=0",
               "Optimizer.name=SGD"))
    run = str(tmp_path / "tiny")
    good = paddle.load(os.path.join(run, "checkpoints", "epoch_1.pdparams"))
    cfg = run_folder.load_run_config(None, ["Global.epochs=2", "Optimizer.lr=1e30"], run)
    with pytest.raises(NonFiniteLoss, match=r"loss became (nan|inf) at epoch 2, step \d+ .*Last good checkpoint: "
                                            r".*epoch_1"):
        train(cfg, resume=run)
    assert json.loads(open(os.path.join(run, "checkpoints", "latest.json")).read())["checkpoint"] == "epoch_1"
    assert not os.path.exists(os.path.join(run, "checkpoints", "epoch_2.pdparams"))
    again = paddle.load(os.path.join(run, "checkpoints", "epoch_1.pdparams"))
    assert all(np.array_equal(again[k].numpy(), good[k].numpy()) for k in good if k != "__identity__")


def test_checkpoint_write_is_kill_safe(tmp_path, monkeypatch):
    net = paddle.nn.Linear(2, 2)
    saver = saver_mod.CheckpointSaver(str(tmp_path), total_epochs=2)
    saver.save_epoch(1, net, None, {"epochs_done": 1}, improved=False)
    before = (tmp_path / "epoch_1.pdparams").read_bytes()

    def killed(obj, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"torn")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.paddle, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        saver.save_epoch(1, net, None, {"epochs_done": 2}, improved=False)
    assert (tmp_path / "epoch_1.pdparams").read_bytes() == before
    assert json.loads((tmp_path / "latest.json").read_text())["epochs_done"] == 1
    monkeypatch.undo()
    assert set(paddle.load(str(tmp_path / "epoch_1.pdparams"))) == {"weight", "bias"}


def test_sync_batchnorm_and_rank0_only_writes(tmp_path, monkeypatch):
    net = ep.create_model("edgevit_xxs", num_classes=3)
    assert convert_sync_bn(net, 1) is net
    synced = convert_sync_bn(net, 2)
    assert any(isinstance(m, paddle.nn.SyncBatchNorm) for m in synced.sublayers())
    assert not any(type(m) is paddle.nn.BatchNorm2D for m in synced.sublayers())
    assert convert_sync_bn(net, 2, device="cpu") is net  # no SyncBatchNorm kernel on CPU
    assert not any(isinstance(m, paddle.nn.SyncBatchNorm) for m in convert_sync_bn(ep.create_model("vit_mnist"), 2)
                   .sublayers())
    monkeypatch.setattr(trainer_mod, "world", lambda: (1, 1))
    train(tiny(tmp_path, "Global.epochs=1"))
    assert os.listdir(tmp_path) == []  # rank 1 writes nothing


def test_the_training_tool_sets_its_environment_before_paddle_loads(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    script = tmp_path / "train_tool.py"  # the training tool's entry point, saying what it was started with
    script.write_text("import os\nprint('policy:', os.environ.get('OMP_WAIT_POLICY'), flush=True)\n"
                      "from edgevit_paddle.cli.train import cli\ncli()\n")
    res = subprocess.run([sys.executable, str(script), "-o", "Optimizer.lrr=1"], capture_output=True, text=True,
                         cwd=ROOT, env=env)
    assert res.stdout.split() == ["policy:", "None", "policy:", "PASSIVE"]  # started again, with it set
    assert res.returncode == 2 and "unknown key 'Optimizer.lrr'" in res.stderr


def test_eval_tool_and_train_tool_errors(tmp_path):
    train(tiny(tmp_path, "Global.epochs=1"))
    run = tmp_path / "tiny"
    res = run_tool("tools/eval.py", "-c", str(run / "config.yaml"), "--weights", str(run / "checkpoints" / "best"),
                   "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    best = json.loads((run / "metrics.json").read_text())["best_top1"]
    assert out["acc_top1"] == pytest.approx(best) and "loss" in out and out["images"] == 32
    for args, text in [(["tools/train.py", "-o", "Optimizer.lrr=1"], "unknown key 'Optimizer.lrr'"),
                       (["tools/train.py", "-c", "configs/edgevit/edgevit_xxs_flowers102.yaml", "-o",
                         "Data.root=/nonexistent"], "Flowers-102 files not found in '/nonexistent'"),
                       (["tools/train.py", "--resume", str(tmp_path / "nope")], "not a run folder"),
                       (["tools/train.py", "-o", "Data.Train.batch_size=5000", "-o", f"Global.output_dir={tmp_path}"],
                        "larger than the training set"),
                       (["tools/train.py", "-o", "Data.image_size=40", "-o", f"Global.output_dir={tmp_path}", "-o",
                         "Data.Train.transforms=[{Resize: {size: 40}}, {ToTensor: {}}]"],
                        "nearest valid height: 32 or 64"),
                       (["tools/eval.py", "-c", str(run / "config.yaml"), "--weights", "nope"], "no weights at"),
                       (["tools/eval.py", "-c", str(run / "config.yaml"), "-o", "Model.norm=ln", "--weights",
                         str(run / "checkpoints" / "best")], "do not fit")]:
        res = run_tool(*args)
        assert res.returncode == 2, (args, res.stdout[-500:], res.stderr[-2000:])
        err = [line for line in res.stderr.strip().splitlines() if line.startswith("error: ")]
        assert len(err) == 1 and text in err[0], res.stderr[-2000:]
        assert "Traceback" not in res.stderr


def test_resume_auto_finds_the_newest_run(tmp_path):
    overrides = ["Model.name=edgevit_xxs", f"Global.output_dir={tmp_path}", "Global.run_name=tiny", *TINY,
                 "Global.epochs=1"]
    with pytest.raises(FileNotFoundError, match="found no run of 'tiny'"):
        run_folder.resolve_resume("auto", None, overrides)
    train(load_config(None, overrides))
    train(load_config(None, overrides))
    assert run_folder.resolve_resume("auto", None, overrides) == os.path.join(str(tmp_path), "tiny-2")
    assert run_folder.resolve_resume(str(tmp_path / "tiny"), None, overrides) == str(tmp_path / "tiny")


def test_ctrl_c_on_the_command_line_saves_a_checkpoint(tmp_path):
    import signal
    cmd = [sys.executable, "tools/train.py", "-o", f"Global.output_dir={tmp_path}", "-o", "Global.run_name=sig",
           *[a for kv in TINY for a in ("-o", kv)], "-o", "Global.epochs=50"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "epoch 1/50" in line:
            proc.send_signal(signal.SIGINT)
            break
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + out
    latest = json.loads((tmp_path / "sig" / "checkpoints" / "latest.json").read_text())
    assert latest["checkpoint"] == "interrupted" and latest["epochs_done"] >= 1
    assert "--resume" in out


def test_unreadable_image_in_a_loader_worker_is_one_data_error(tmp_path, capfd):
    """An image that fails to decode inside a DataLoader worker ends the run with that image's one-line DataError,
    not Paddle's "Blocking queue is killed" and a worker traceback."""
    from conftest import DATA
    root = tmp_path / "flowers"
    (root / "102flowers" / "jpg").mkdir(parents=True)
    for f in ("102flowers.tgz", "imagelabels.mat", "setid.mat"):
        os.symlink(os.path.join(DATA, "flowers102", f), root / f)
    for i in range(1, 8190):
        (root / "102flowers" / "jpg" / f"image_{i:05d}.jpg").write_bytes(b"not a jpeg")
    cfg = load_config(None, ["Model.name=edgevit_xxs", f"Global.output_dir={tmp_path}", "Global.run_name=bad",
                             "Data.dataset=flowers102", f"Data.root={root}", "Data.image_size=32", "Data.num_workers=1",
                             "Data.Train.batch_size=4", "Global.verbose=0", "Global.epochs=1"])
    with pytest.raises(ep.data.DataError, match=r"^cannot read Flowers-102 image \d+ in .*102flowers"):
        train(cfg)
    assert "Traceback" not in capfd.readouterr().err
    import multiprocessing
    assert multiprocessing.active_children() == []  # the loader's workers are stopped, not left to hold up exit


@pytest.mark.xdist_group("paddle_launcher")  # one launcher at a time: each opens ports on this machine
def test_two_cpu_processes_train_data_parallel(tmp_path):
    """tools/train.py under Paddle's launcher with two CPU processes (gloo): one run folder written by rank 0, the
    cores shared out (1 thread each here), per-process BatchNorm (no SyncBatchNorm kernel on CPU), images/s global."""
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--log_dir", str(tmp_path / "log"), "--nproc_per_node",
           "2", os.path.join(ROOT, "tools", "train.py"), "-o", f"Global.output_dir={tmp_path / 'out'}",
           "-o", "Global.cpu_threads=1", *[a for kv in TINY for a in ("-o", kv)]]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    logs = "".join((tmp_path / "log" / f).read_text(errors="replace") for f in os.listdir(tmp_path / "log"))
    assert res.returncode == 0, logs[-3000:]
    assert os.listdir(tmp_path / "out") == ["quickstart"]
    run = tmp_path / "out" / "quickstart"
    text = (run / "train.log").read_text()
    assert "2 process(es) on cpu, 1 thread(s) each" in text
    assert "BatchNorm statistics are per process" in text
    metrics = json.loads((run / "metrics.json").read_text())
    # 64 training images, batch 16 per process: 2 steps per epoch
    assert metrics["epochs_done"] == 2 and metrics["global_step"] == 4 and metrics["final_top1"] is not None


@pytest.mark.xdist_group("paddle_launcher")  # one launcher at a time: each opens ports on this machine
def test_the_recipe_trains_under_the_cpu_launcher(tmp_path):
    """Repeated augmentation, Mixup/CutMix and EMA under Paddle's launcher: each process takes its share of the
    repeated draws, rank 0 saves the EMA beside the weights."""
    recipe = ["Data.Train.sampler=repeated", "Mixup.mixup_alpha=0.8", "Mixup.cutmix_alpha=1.0", "EMA.decay=0.9"]
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--log_dir", str(tmp_path / "log"), "--nproc_per_node",
           "2", os.path.join(ROOT, "tools", "train.py"), "-o", f"Global.output_dir={tmp_path / 'out'}",
           "-o", "Global.cpu_threads=1", *[a for kv in TINY + recipe for a in ("-o", kv)]]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    logs = "".join((tmp_path / "log" / f).read_text(errors="replace") for f in os.listdir(tmp_path / "log"))
    assert res.returncode == 0, logs[-3000:]
    run = tmp_path / "out" / "quickstart"
    metrics = json.loads((run / "metrics.json").read_text())
    # 64 images x 3 repeats dealt over 2 processes, 32 draws each (DeiT: at most the set's size per epoch): 2 steps
    assert metrics["global_step"] == 4 and metrics["history"][-1]["eval"]["ema_acc_top1"] is not None
    assert (run / "checkpoints" / "epoch_2.pdema").exists()


def test_a_run_stopped_mid_epoch_resumes_with_the_steps_and_schedule_of_the_uninterrupted_run(tmp_path, monkeypatch):
    from edgevit_paddle.engine.callbacks import TrainingMonitor
    straight = train(tiny(tmp_path / "a", "Global.epochs=3"))
    original = TrainingMonitor.on_train_batch_end

    def ctrl_c_at_step_6(self, step, logs=None):
        original(self, step, logs)
        if self.state.global_step == 6:  # mid epoch 2 (4 steps per epoch)
            raise KeyboardInterrupt

    monkeypatch.setattr(TrainingMonitor, "on_train_batch_end", ctrl_c_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train(tiny(tmp_path / "b", "Global.epochs=3"))
    monkeypatch.setattr(TrainingMonitor, "on_train_batch_end", original)
    run = tmp_path / "b" / "tiny"
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["checkpoint"] == "interrupted" and latest["epochs_done"] == 1 and latest["global_step"] == 4
    resumed = train(run_folder.load_run_config(None, [], str(run)), resume=str(run))
    assert resumed["global_step"] == straight["global_step"] == 12
    lrs = [[h["train"]["lr"] for h in r["history"]] for r in (resumed, straight)]
    assert lrs[0] == pytest.approx(lrs[1])


def test_the_logged_learning_rate_is_the_one_the_epoch_trained_with(tmp_path):
    """#33: metrics.json's per-epoch lr is the rate the epoch's steps used, not the next epoch's (read after fit had
    stepped the schedule); the VisualDL per-step curve ends at the same rate."""
    res = train(tiny(tmp_path, "Global.epochs=2", "Optimizer.lr=0.01", "Optimizer.Scheduler.name=step",
                     "Optimizer.Scheduler.step_epochs=1", "Optimizer.Scheduler.gamma=0.1",
                     "Optimizer.Scheduler.by_epoch=true", "Optimizer.Scheduler.warmup_epochs=0"))
    assert [h["train"]["lr"] for h in res["history"]] == pytest.approx([0.01, 0.001])
    steps = read_scalars(tmp_path / "tiny", "train/lr")
    assert steps[-1].value == pytest.approx(0.001)
