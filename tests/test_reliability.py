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
import yaml
from conftest import DATA, ROOT, flowers_jpegs, run_tool

from edgevit_paddle.config import load_config
from edgevit_paddle.data import build_dataset
from edgevit_paddle.data.seeding import sample_seed

AUGMENTED = ["Data.dataset=digits", "Data.image_size=32", "Data.Train.max_samples=128", "Data.Eval.max_samples=32",
             "Data.Train.batch_size=16", "Data.Eval.batch_size=16", "Global.epochs=3", "Data.num_workers=1",
             "Model.drop_path_rate=0.1", "Optimizer.Scheduler.warmup_epochs=1",
             "Data.Train.transforms=[{RandomResizedCrop: {size: 32, scale: [0.5, 1.0]}}, {RandomHorizontalFlip: {}}, "
             "{ToTensor: {}}]"]


def train_cmd(out, *more):
    return [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-o", f"Global.output_dir={out}",
            "-o", "Global.run_name=aug", *[a for kv in AUGMENTED for a in ("-o", kv)], *more]


def weights(run):
    state = paddle.load(str(run / "checkpoints" / "epoch_3.pdparams"))
    assert state.pop("__identity__")["model"] == "edgevit_xxs"
    return state


def test_a_killed_loader_worker_ends_the_run_in_one_line(tmp_path):
    """The kernel's out-of-memory killer takes a loader worker: Paddle raises a SystemError wherever the main thread
    is; the run now ends with one line naming the worker and the resume command."""
    proc = subprocess.Popen(train_cmd(tmp_path, "-o", "Global.epochs=30"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    latest = tmp_path / "aug" / "checkpoints" / "latest.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not latest.exists():
        time.sleep(0.2)
    workers = []  # an epoch's workers exit at its end and the next epoch's start a moment later: wait for them
    while time.time() < deadline and proc.poll() is None and not workers:
        workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(p) == proc.pid]
        time.sleep(0.05)
    assert workers and proc.poll() is None
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    # Paddle's SIGCHLD handler ("is killed by signal: Killed") or its reading thread ("exited unexpectedly"): a race
    assert f"a data-loading worker process (pid {workers[0]} " in errors[0] and "stopped the run" in errors[0]
    assert f"--resume {tmp_path / 'aug'}" in errors[0]


def test_a_dead_worker_reported_by_the_reading_thread_is_one_line_too(tmp_path, monkeypatch):
    """The other order of the race: Paddle's reading thread logs the dead worker and the step gets "Blocking queue
    is killed"."""
    import logging

    from edgevit_paddle.engine import epoch_loop

    def dies(self, *args, **kwargs):
        logging.warning("DataLoader 1 workers exit unexpectedly, pids: 4242")  # as dataloader_iter.py logs it
        raise SystemError("(Fatal) Blocking queue is killed because the data reader raises an exception.")
    monkeypatch.setattr(epoch_loop.EpochLoop, "run", dies)
    args = [a for kv in TINY + [f"Global.output_dir={tmp_path}"] for a in ("-o", kv)]
    res = tool("tools/train.py", *args)
    line = one_error_line(res)
    assert "a data-loading worker process (pid 4242 exited unexpectedly) stopped the run" in line
    assert "workers exit unexpectedly" not in res.stderr  # Paddle's warning is not printed beside it


def _parent(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):  # gone meanwhile
        return -1


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


TINY = ["Data.dataset=digits", "Data.image_size=32", "Data.Train.max_samples=64", "Data.Eval.max_samples=32",
        "Data.Train.batch_size=16", "Data.Eval.batch_size=16", "Global.verbose=0", "Global.epochs=1",
        "Data.Train.transforms=[{Resize: {size: 32}}, {ToTensor: {}}]",
        "Data.Eval.transforms=[{Resize: {size: 32}}, {ToTensor: {}}]"]


def tiny_run(tmp_path, *more):
    from edgevit_paddle.engine import train
    train(load_config(None, ["Model.name=edgevit_xxs", f"Global.output_dir={tmp_path}", "Global.run_name=t", *TINY,
                             *more]))
    return tmp_path / "t"


def tool(*args, **kw):
    return run_tool(*args, **kw)


def one_error_line(res):
    errors = [line for line in res.stderr.strip().splitlines() if line.startswith("error: ")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    return errors[0]


def test_a_failed_write_leaves_no_temporary_file_and_resume_sweeps_old_ones(tmp_path, monkeypatch):
    import errno

    from edgevit_paddle.engine import checkpoint as ckpt
    from edgevit_paddle.engine.checkpoint_saver import CheckpointSaver
    net = paddle.nn.Linear(2, 2)
    CheckpointSaver(str(tmp_path), total_epochs=2).save_epoch(1, net, None, {"epochs_done": 1}, improved=False)

    def disk_full(obj, path, *a, **k):
        with open(path, "wb") as f:
            f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt.paddle, "save", disk_full)
    with pytest.raises(ckpt.CheckpointError, match="no space left in"):
        ckpt.save_checkpoint(str(tmp_path), "epoch_2", net, None, {"epochs_done": 2})
    assert sorted(os.listdir(tmp_path)) == ["epoch_1.json", "epoch_1.pdparams", "latest.json"]
    monkeypatch.undo()

    run = tiny_run(tmp_path / "r")
    orphan = run / "checkpoints" / "epoch_1.pdparams.tmp-99999"
    orphan.write_bytes(b"half a checkpoint")
    res = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert not orphan.exists() and "removed 1 temporary file(s)" in (run / "train.log").read_text()


def test_resume_without_optimizer_state_is_refused_unless_asked(tmp_path):
    run = tiny_run(tmp_path)
    (run / "checkpoints" / "epoch_1.pdopt").unlink()
    config_before = (run / "config.yaml").read_bytes()
    line = one_error_line(tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=2"))
    assert "epoch_1.pdopt' is missing" in line and "--weights-only" in line
    assert (run / "config.yaml").read_bytes() == config_before  # the failed resume changed nothing
    res = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=2", "--weights-only")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "optimizer and schedule restarted" in (run / "train.log").read_text()
    assert json.loads((run / "metrics.json").read_text())["epochs_done"] == 2


def test_bare_weights_of_another_variant_are_refused(tmp_path):
    run = tiny_run(tmp_path)
    bare = tmp_path / "copied.pdparams"  # the weights file alone, without its JSON
    bare.write_bytes((run / "checkpoints" / "best.pdparams").read_bytes())
    line = one_error_line(tool("tools/eval.py", "-c", str(run / "config.yaml"), "-o", "Model.norm=ln", "--weights",
                               str(bare)))
    assert "do not fit this config: Model.norm: 'gn' in the weights, 'ln' in the config" in line
    res = tool("tools/eval.py", "-c", str(run / "config.yaml"), "--weights", str(bare), "--json")
    assert res.returncode == 0, res.stderr[-2000:]


def test_a_failed_resume_leaves_the_config_as_it_was(tmp_path):
    run = tiny_run(tmp_path)
    before = (run / "config.yaml").read_bytes()
    line = one_error_line(tool("tools/train.py", "--resume", str(run), "-o", "Model.norm=ln", "-o",
                               "Global.epochs=3"))
    assert "do not fit this config: Model.norm: 'gn' in the weights, 'ln' in the config" in line
    assert (run / "config.yaml").read_bytes() == before


def signal_after_first_epoch(out_dir, sig, preexec_fn=None):
    """Start a long run, send ``sig`` once its first epoch is logged; its exit code, output and latest.json."""
    cmd = [sys.executable, "tools/train.py", "-o", f"Global.output_dir={out_dir}", "-o", "Global.run_name=s",
           *[a for kv in TINY for a in ("-o", kv)], "-o", "Global.epochs=50", "-o", "Global.verbose=1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=preexec_fn)
    for line in proc.stdout:
        if "epoch 1/50" in line:
            proc.send_signal(sig)
            break
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out, json.loads((out_dir / "s" / "checkpoints" / "latest.json").read_text())


def test_sigterm_saves_like_ctrl_c(tmp_path):
    code, out, latest = signal_after_first_epoch(tmp_path, signal.SIGTERM)
    assert code == 143, out[-2000:]
    assert latest["checkpoint"] == "interrupted" and "--resume" in out and "Fatal" not in out


def test_model_arguments_are_typed_and_inputs_checked():
    line = one_error_line(tool("tools/train.py", "-o", "Model.drop_path_rate=abc"))
    assert "argument 'drop_path_rate' of model 'edgevit_xxs' must be float like its default 0.0, got str 'abc'" in line
    import edgevit_paddle as ep
    from edgevit_paddle.errors import InputError
    model = ep.create_model("edgevit_xxs")
    for dtype in ("float64", "int64"):
        with pytest.raises(InputError, match=f"takes float32 images, got {dtype}: cast them first"):
            model(paddle.zeros([1, 3, 64, 64], dtype=dtype))


def test_nan_weights_are_named_at_evaluation(tmp_path):
    run = tiny_run(tmp_path)
    state = paddle.load(str(run / "checkpoints" / "best.pdparams"))
    state["head.weight"] = paddle.full(state["head.weight"].shape, float("nan"))
    paddle.save(state, str(run / "checkpoints" / "best.pdparams"))
    line = one_error_line(tool("tools/eval.py", "-c", str(run / "config.yaml"), "--weights",
                               str(run / "checkpoints" / "best")))
    assert "non-finite outputs on the eval data" in line and "damaged" in line


def test_truncated_images_in_an_image_folder_are_skipped(tmp_path):
    import cv2
    for split in ("train", "val"):
        for cls in ("a", "b"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(d / f"{i}.jpg"), np.random.RandomState(i).randint(0, 255, (40, 50, 3), np.uint8))
    data = (tmp_path / "train" / "a" / "0.jpg").read_bytes()
    (tmp_path / "train" / "a" / "cut.jpg").write_bytes(data[: len(data) // 2])
    cfg = load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=imagefolder", f"Data.root={tmp_path}",
                             "Data.image_size=32"])
    ds = build_dataset(cfg["Data"], "Train")
    cut = ds.base.images.index(str(tmp_path / "train" / "a" / "cut.jpg"))
    x, _, skipped = ds[(0, cut, 0)]  # met when read: replaced, and reported to the trainer
    assert int(skipped[0]) == cut and x.shape == (3, 32, 32)


def test_damaged_latest_json_or_checkpoint_falls_back_to_the_newest_intact_one(tmp_path):
    run = tiny_run(tmp_path, "Global.epochs=2", "Global.keep_checkpoints=3")
    ckpt = run / "checkpoints"
    (ckpt / "latest.json").write_text("")  # emptied, e.g. by a full disk
    res = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=3")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "latest.json is damaged or empty: resuming from 'epoch_2'" in res.stderr.replace("\n", " ")
    assert json.loads((ckpt / "latest.json").read_text())["epochs_done"] == 3
    # latest names a checkpoint whose weights are cut short: the one before it
    data = (ckpt / "epoch_3.pdparams").read_bytes()
    (ckpt / "epoch_3.pdparams").write_bytes(data[: len(data) // 3])
    res = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=3")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "names 'epoch_3', which is missing or damaged: resuming from 'epoch_2'" in res.stderr.replace("\n", " ")
    for f in ckpt.glob("*.json"):
        f.write_text("{")
    line = one_error_line(tool("tools/train.py", "--resume", str(run)))
    assert "no intact checkpoint in" in line


def test_after_a_fallback_resume_metrics_json_and_best_json_agree(tmp_path):
    run = tiny_run(tmp_path, "Global.epochs=3", "Global.keep_checkpoints=3")
    ckpt = run / "checkpoints"
    best = json.loads((ckpt / "best.json").read_text())
    assert best["best_epoch"] > 1  # the precondition: an epoch after the fallback point wrote best
    for n in (2, 3):  # lost: only epoch_1 is left to resume from
        (ckpt / f"epoch_{n}.pdparams").write_bytes(b"")
    for epochs in ("1", "3"):  # nothing left to do, and the lost epochs trained again
        res = tool("tools/train.py", "--resume", str(run), "-o", f"Global.epochs={epochs}")
        assert res.returncode == 0 and "resuming from 'epoch_1'" in res.stderr.replace("\n", " "), res.stderr[-2000:]
        metrics = json.loads((run / "metrics.json").read_text())
        best = json.loads((ckpt / "best.json").read_text())
        assert (metrics["best_epoch"], metrics["best_top1"]) == (best["best_epoch"], best["best_top1"])


def test_a_second_process_on_the_same_run_is_refused(tmp_path):
    from edgevit_paddle.engine.run_folder import locked
    run = tiny_run(tmp_path)
    with locked(str(run)):  # as a resume in another process would hold it
        line = one_error_line(tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=2",
                                   in_process=False))
        assert f"is in use by process {os.getpid()}" in line
    assert tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=2").returncode == 0


def test_top1_only_and_one_class_runs_end_with_a_best_checkpoint(tmp_path):
    import cv2
    for split in ("train", "val"):
        d = tmp_path / "one" / split / "only"
        d.mkdir(parents=True)
        for i in range(16):
            cv2.imwrite(str(d / f"{i}.png"), np.random.RandomState(i).randint(0, 255, (32, 32, 3), np.uint8))
    for more in (["Metric.topk=[1]"], ["Data.dataset=imagefolder", f"Data.root={tmp_path / 'one'}",
                                       "Data.Eval.split=val", "Data.Train.max_samples=16", "Data.Eval.max_samples=16"]):
        out = tmp_path / str(len(more))
        res = tool("tools/train.py", "-o", f"Global.output_dir={out}", *[a for kv in TINY + more for a in ("-o", kv)])
        assert res.returncode == 0, res.stderr[-2000:]
        (run,) = out.iterdir()
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["final_top1"] is not None and (run / "checkpoints" / "best.pdparams").exists()


def test_a_transform_size_that_disagrees_with_the_image_size_fails_at_load(tmp_path):
    line = one_error_line(tool("tools/train.py", "-o", f"Global.output_dir={tmp_path}", "-o",
                               "Data.Eval.transforms=[{Resize: {size: 73}}, {CenterCrop: {size: 64}}, {ToTensor: {}}]"))
    assert "Data.Eval.transforms end at 64x64, but Data.image_size is 32" in line
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_full_disk_or_read_only_folder_is_one_line_and_loses_nothing(tmp_path, monkeypatch):
    import errno

    from edgevit_paddle.engine import checkpoint as ckpt
    from edgevit_paddle.engine import train
    from edgevit_paddle.errors import CheckpointError
    cfg = load_config(None, ["Model.name=edgevit_xxs", f"Global.output_dir={tmp_path}", "Global.run_name=t", *TINY,
                             "Global.epochs=3"])
    real_save = ckpt.paddle.save

    def fills_up(obj, path, *a, **k):
        if "epoch_2" in path:
            with open(path, "wb") as f:
                f.write(b"x" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(ckpt.paddle, "save", fills_up)
    with pytest.raises(CheckpointError, match=r"no space left in '.*checkpoints': a checkpoint needs about \d+ MB, "
                                              r"\d+ MB are free; .* the earlier checkpoints are intact"):
        train(cfg)
    monkeypatch.undo()
    files = sorted(os.listdir(tmp_path / "t" / "checkpoints"))
    assert not [f for f in files if ".tmp-" in f] and "epoch_2.pdparams" not in files
    assert json.loads((tmp_path / "t" / "checkpoints" / "latest.json").read_text())["checkpoint"] == "epoch_1"
    paddle.load(str(tmp_path / "t" / "checkpoints" / "epoch_1.pdparams"))  # intact

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    from edgevit_paddle.engine import trainer
    monkeypatch.setattr(trainer.os, "makedirs", read_only)
    with pytest.raises(CheckpointError, match=r"cannot write in '.*' \(Read-only file system\): set "
                                              r"Global.output_dir to a writable folder"):
        train(load_config(None, ["Model.name=edgevit_xxs", f"Global.output_dir={tmp_path / 'ro'}", *TINY]))


def test_a_pending_best_is_settled_on_resume(tmp_path):
    run = tiny_run(tmp_path, "Global.epochs=1")
    ckpt = run / "checkpoints"
    best = json.loads((ckpt / "best.json").read_text())
    # stopped between writing epoch 2's best and its latest.json: latest does not record it, so it goes
    (ckpt / "best_pending.pdparams").write_bytes((ckpt / "best.pdparams").read_bytes())
    (ckpt / "best_pending.json").write_text(json.dumps({**best, "epochs_done": 2, "best_epoch": 2}))
    from edgevit_paddle.engine.checkpoint_saver import CheckpointSaver
    saver = CheckpointSaver(str(ckpt))
    assert "removed the best checkpoint of epoch 2" in saver.settle_best(saver.read_latest())
    assert sorted(f.name for f in ckpt.glob("best*")) == ["best.json", "best.pdparams"]
    # stopped after latest.json recorded it, before the renames: it is promoted
    (ckpt / "best_pending.pdparams").write_bytes((ckpt / "best.pdparams").read_bytes())
    (ckpt / "best_pending.json").write_text(json.dumps({**best, "marker": 1}))
    res = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=1")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "promoted the best checkpoint of epoch 1" in (run / "train.log").read_text()
    assert json.loads((ckpt / "best.json").read_text())["marker"] == 1 and not (ckpt / "best_pending.json").exists()


def test_ctrl_c_reaches_a_run_started_in_the_background_of_a_script(tmp_path):
    """A script's background job inherits SIGINT ignored; the run still saves and stops on it."""
    code, out, latest = signal_after_first_epoch(tmp_path, signal.SIGINT,
                                                 lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert code == 130 and latest["checkpoint"] == "interrupted", out[-2000:]


def test_a_bug_when_reading_checkpoints_or_building_kernels_keeps_its_traceback(tmp_path, monkeypatch):
    """A damaged checkpoint falls back to an intact one, but a TypeError in the weights reader is not taken for a
    damaged file; a bug in the kernel build is not taken for a missing compiler."""
    from edgevit_paddle import kernels
    from edgevit_paddle.engine import checkpoint as ckpt
    from edgevit_paddle.engine.checkpoint_saver import CheckpointSaver
    net = paddle.nn.Linear(2, 2)
    saver = CheckpointSaver(str(tmp_path), total_epochs=1)
    saver.save_epoch(1, net, None, {"epochs_done": 1}, improved=False)
    assert saver.resume_point()["checkpoint"] == "epoch_1"

    def planted(*a, **k):
        raise TypeError("planted bug")

    with monkeypatch.context() as m:
        m.setattr(ckpt.safe_load, "load", planted)
        with pytest.raises(TypeError, match="planted bug"):
            saver.resume_point()
    monkeypatch.setattr(kernels, "_state", {"ready": None, "reason": "", "threads": None})
    monkeypatch.setattr(kernels.build, "compile_into", planted)
    monkeypatch.setattr(kernels, "cache_dir", lambda: str(tmp_path / "kernels"))
    with pytest.raises(TypeError, match="planted bug"):
        kernels.available()
    monkeypatch.setattr(kernels, "_state", {"ready": None, "reason": "", "threads": None})

    def no_compiler(folder):
        raise OSError("no compiler found")

    monkeypatch.setattr(kernels.build, "compile_into", no_compiler)
    with pytest.warns(UserWarning, match="using Paddle's ops: no compiler found"):
        assert kernels.available() is False


def test_run_names_output_folders_topk_and_batch_sizes_are_checked_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    for name in ("../escape", "/abs/olute", ".."):
        line = one_error_line(tool("tools/train.py", "-o", f"Global.output_dir={out}", "-o", f"Global.run_name={name}"))
        assert "must be a folder name, not a path" in line
    (tmp_path / "afile").write_text("x")
    line = one_error_line(tool("tools/train.py", "-o", f"Global.output_dir={tmp_path / 'afile'}"))
    assert "is a file: give a folder" in line
    line = one_error_line(tool("tools/train.py", "-o", f"Global.output_dir={out}", "-o", "Data.Train.batch_size=5000"))
    assert "larger than the training set" in line
    assert not out.exists() and not (tmp_path.parent / "escape").exists()  # no run folder was made, anywhere
    # the run's folder name taken by a file: the next free name, as for an occupied folder
    run = tiny_run(tmp_path / "busy")
    (tmp_path / "busy" / "t-2").write_text("not a folder")
    again = tiny_run(tmp_path / "busy")
    assert again.name == "t" and (tmp_path / "busy" / "t-3" / "metrics.json").exists() and run.exists()
    model = tmp_path / "exp"
    from edgevit_paddle.export import export_from_config
    export_from_config(load_config(str(run / "config.yaml")), weights=str(run / "checkpoints" / "best"),
                       out_dir=str(model), formats="paddle")
    photo = flowers_jpegs(tmp_path / "photo", ids=(1,))[0]
    assert "--topk 0: ask for at least 1" in one_error_line(tool("tools/infer.py", "--model-dir", str(model), photo,
                                                                         "--topk", "0"))


def test_resume_auto_goes_on_with_the_runs_own_config(tmp_path):
    out = tmp_path / "out"
    cfg = str(tmp_path / "small.yaml")
    with open(cfg, "w") as f:
        yaml.safe_dump({"Model": {"name": "edgevit_xxs"}, "Global": {"output_dir": str(out), "epochs": 1,
                                                                      "run_name": "quickstart"},
                        "Data": load_config(None, ["Model.name=edgevit_xxs", *TINY])["Data"]}, f)
    assert tool("tools/train.py", "-c", cfg).returncode == 0
    before = (out / "quickstart" / "config.yaml").read_text()
    res = tool("tools/train.py", "--resume", "auto", "-o", f"Global.output_dir={out}", "-o", "Global.epochs=2")
    assert res.returncode == 0, res.stderr[-2000:]
    after = yaml.safe_load((out / "quickstart" / "config.yaml").read_text())
    assert after["Data"] == yaml.safe_load(before)["Data"] and after["Global"]["epochs"] == 2  # not the quickstart's
    assert json.loads((out / "quickstart" / "metrics.json").read_text())["epochs_done"] == 2


def test_a_decompression_bomb_is_not_decoded(tmp_path):
    from PIL import Image

    from edgevit_paddle.image import MAX_PIXELS, file_problem
    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 20000)).save(bomb, optimize=True)  # 400 million pixels in about 0.4 MB
    assert bomb.stat().st_size < 1_000_000 and 20000 * 20000 > MAX_PIXELS
    assert "pixels" in file_problem(str(bomb)) and "not decoded" in file_problem(str(bomb))
    assert file_problem(flowers_jpegs(tmp_path / "ok", ids=(1,))[0]) is None
    from edgevit_paddle.data.labeled import read_whole_image
    assert read_whole_image(str(bomb)) is None  # training: replaced by the next readable image and reported


def _kill_battery():
    import importlib.util
    path = os.path.join(ROOT, "docs", "results", "reliability", "kill_during_export.py")
    spec = importlib.util.spec_from_file_location("kill_during_export", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_export_replaces_the_folder_whole_or_not_at_all(tmp_path, monkeypatch):
    from edgevit_paddle.errors import ExportError
    from edgevit_paddle.export import export_from_config, exporter
    battery = _kill_battery()
    config, a, b = battery.two_checkpoints(str(tmp_path / "runs"))
    folder = tmp_path / "export"
    export_from_config(load_config(config), weights=a, out_dir=str(folder), agreement_images=0)
    before = {f: (folder / f).read_bytes() for f in os.listdir(folder)}

    class Killed(BaseException):
        pass

    def killed(*args, **kwargs):  # every new file is written, the ONNX check is running: the worst moment
        raise Killed()

    monkeypatch.setattr(exporter, "_check_onnx", killed)
    with pytest.raises(Killed):
        export_from_config(load_config(config), weights=b, out_dir=str(folder), agreement_images=0)
    assert {f: (folder / f).read_bytes() for f in os.listdir(folder)} == before  # A, whole
    assert [f for f in os.listdir(tmp_path) if ".staging-" in f] == []
    monkeypatch.undo()
    assert battery.check_folder(str(folder), config)["weights"] == "epoch_1"
    # two kills -9 of tools/export.py at random moments: one consistent export every time
    for row in battery.battery(str(tmp_path), kills=2, low=2.0, high=6.0, seed=1, prepared=(config, a, b, str(folder))):
        assert row["weights"] in ("epoch_1", "epoch_2") and row["beside"] == [] or \
            all(".staging-" in f for f in row["beside"]), row
    # a folder holding other files is not replaced; a file is not a folder
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="holds files that are not an export .notes.txt."):
        export_from_config(load_config(config), weights=b, out_dir=str(tmp_path / "mine"))
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExportError, match="is a file: give a folder"):
        export_from_config(load_config(config), weights=b, out_dir=str(tmp_path / "afile"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_an_export_onto_a_full_disk_is_one_line_and_keeps_the_earlier_export(tmp_path, monkeypatch):
    import errno

    from edgevit_paddle import create_model
    from edgevit_paddle.errors import ExportError
    from edgevit_paddle.export import exporter
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "inference.yml").write_text("an earlier export\n")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(exporter, "save_paddle", full)
    with pytest.raises(ExportError, match="no space left.*an earlier export there is intact"):
        exporter.export_model(create_model("vit_mnist"), str(folder), (1, 28, 28), {})
    assert os.listdir(folder) == ["inference.yml"] and (folder / "inference.yml").read_text() == "an earlier export\n"
    assert [f for f in os.listdir(tmp_path) if ".staging-" in f] == []


@pytest.mark.parametrize("unreadable, workers", [("train", 0), ("val", 0), ("train/b", 0), ("train/b", 1)])
def test_a_split_or_a_class_whose_images_all_fail_ends_the_run_in_one_line(tmp_path, unreadable, workers):
    """With no loader workers, Paddle's loader thread dies without waking the training step, which then waited
    forever, deaf to Ctrl-C and SIGTERM: the run now ends at once with one line. A class none of whose images can be
    read ends it too (an unreadable image is replaced by another of its class, and there is none)."""
    import cv2
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(3):
                path = tmp_path / split / cls / f"{i}.png"
                if unreadable in (split, f"{split}/{cls}"):
                    path.write_bytes(b"not an image")
                else:
                    cv2.imwrite(str(path), np.full((40, 40, 3), 60 * i, np.uint8))
    steps = "[{Resize: {size: [32, 32]}}, {ToTensor: {}}]"
    args = ["-o", "Model.name=edgevit_xxs", "-o", "Data.dataset=imagefolder", "-o", f"Data.root={tmp_path}",
            "-o", "Data.image_size=32", "-o", "Data.Train.batch_size=2", "-o", "Data.Eval.batch_size=2",
            "-o", f"Global.output_dir={tmp_path / 'out'}", "-o", "Global.epochs=1", "-o", "Global.verbose=0",
            "-o", f"Data.Train.transforms={steps}", "-o", f"Data.Eval.transforms={steps}",
            "-o", f"Data.num_workers={workers}"]
    res = tool("tools/train.py", *args, in_process=False, timeout=300)
    split, _, cls = unreadable.partition("/")
    assert f"no image of {f'class {cls!r} in ' if cls else ''}image folder {tmp_path} '{split}'" in \
        one_error_line(res)


_LOADER_RACE = """
import sys, types
from edgevit_paddle import paddle_noise  # noqa: F401  (Paddle imported quietly)
import paddle
from edgevit_paddle.engine import loaders
from edgevit_paddle.errors import DataError


class Unreadable(paddle.io.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise DataError("no image of the test folder can be read")


if sys.argv[1] == "forced":  # the reading thread dies before DataLoader.__iter__ returns: the race, every time
    plain = paddle.io.DataLoader.__iter__

    def late(self):
        it = plain(self)
        it._thread.join()
        return it
    paddle.io.DataLoader.__iter__ = late
for rep in range(int(sys.argv[2])):
    loader = loaders._Loader(Unreadable(), batch_size=2, num_workers=0)
    both = types.SimpleNamespace(readers=lambda: [loader], shutdown=loader.shutdown)
    try:
        with loaders.failures_explained(both, lambda: "resume"):
            for _ in loader:
                pass
    except DataError as e:
        assert "no image of the test folder" in str(e), e
    else:
        raise SystemExit("no error")
print("ok", rep + 1)
"""


def test_an_unreadable_split_never_hangs_the_step_under_load(tmp_path):
    """With no loader workers, Paddle's reading thread can fail before ``DataLoader.__iter__`` has returned (under
    CPU load, the first batch of an all-unreadable split): the trainer's hook then saw no live iterator to stop and
    the step waited forever, deaf to SIGTERM. The race forced, then run many times beside two busy processes."""
    script = tmp_path / "race.py"
    script.write_text(_LOADER_RACE)
    env = {**os.environ, "PYTHONPATH": ROOT}
    res = subprocess.run([sys.executable, str(script), "forced", "3"], capture_output=True, text=True, timeout=120,
                         env=env)
    assert res.returncode == 0 and "ok 3" in res.stdout, res.stderr[-2000:]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        res = subprocess.run([sys.executable, str(script), "plain", "40"], capture_output=True, text=True,
                             timeout=240, env=env)
    finally:
        for p in busy:
            p.kill()
    assert res.returncode == 0 and "ok 40" in res.stdout, res.stderr[-2000:]


def test_a_worker_death_met_again_at_shutdown_is_not_a_second_traceback(monkeypatch):
    """Paddle's SIGCHLD handler raises its SystemError wherever the main thread is, also inside the loader's shutdown
    after the run has said why it ends (a second, chained traceback): the shutdown keeps that one quiet, and only
    that one."""
    from edgevit_paddle.engine import loaders

    loader = loaders._Loader(paddle.io.TensorDataset([paddle.zeros([4, 1])]), batch_size=2)
    calls = []

    def dies(it):
        calls.append(it)
        raise SystemError("(Fatal) DataLoader process (pid 4242) exited is killed by signal: Killed. (at /paddle/...)")
    monkeypatch.setattr(loaders, "shutdown_loader_iterator", dies)
    loader._live = object()
    loader.shutdown()  # quiet
    assert len(calls) == 1

    def fails(it):
        raise SystemError("something else")
    monkeypatch.setattr(loaders, "shutdown_loader_iterator", fails)
    loader._live = object()
    with pytest.raises(SystemError, match="something else"):
        loader.shutdown()


def test_symlink_loops_are_listed_once_and_an_unlistable_folder_is_one_line(tmp_path, monkeypatch):
    import cv2

    from edgevit_paddle.errors import DataError, PredictorError
    from edgevit_paddle.inference import expand_inputs
    for split in ("train", "val"):
        for cls in ("a", "b"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            cv2.imwrite(str(d / "0.png"), np.zeros((8, 8, 3), np.uint8))
            os.symlink("..", d / "up")  # a folder link that loops back (ELOOP after 40 rounds)
            os.symlink("self.png", d / "self.png")  # a link to itself
    cfg = load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=imagefolder", f"Data.root={tmp_path}",
                             "Data.image_size=32",
                             "Data.Train.transforms=[{Resize: {size: [32, 32]}}, {ToTensor: {}}]"])
    ds = build_dataset(cfg["Data"], "Train")
    # a/0.png, a/self.png (unreadable when met), the same in b; a/up is not followed (it would list b inside a)
    assert len(ds) == 4 and ds.info.num_classes == 2
    assert ds[0][0].shape == (3, 32, 32)
    assert len(expand_inputs([str(tmp_path / "val")])) == 4
    real = os.scandir

    def denied(path="."):
        if str(path).endswith(os.path.join("train", "b")):
            raise PermissionError(13, "Permission denied", str(path))  # as chmod 000 would (we run as root)
        return real(path)
    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(DataError, match=r"cannot list '.*train/b' \(Permission denied\): make it readable"):
        build_dataset(cfg["Data"], "Train")
    with pytest.raises(PredictorError, match=r"cannot list '.*train/b' \(Permission denied\)"):
        expand_inputs([str(tmp_path / "train")])


def test_a_link_into_a_sibling_class_lists_its_images_once_under_their_real_class(tmp_path):
    """``train/b/to_a -> ../a`` (and a linked file, and two links to one image) counted class a's images as class b's
    too: each image is now listed once, under the class whose folder really holds it, with a warning."""
    import cv2
    for split in ("train", "val"):
        for cls in ("a", "b"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(d / f"{i}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    b = tmp_path / "train" / "b"
    os.symlink("../a", b / "to_a")  # a folder link into the sibling class
    os.symlink("../a/0.png", b / "a0.png")  # a file link into it
    os.symlink("0.png", b / "again.png")  # a second name for one of b's own images
    cfg = load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=imagefolder", f"Data.root={tmp_path}",
                             "Data.image_size=32",
                             "Data.Train.transforms=[{Resize: {size: [32, 32]}}, {ToTensor: {}}]"])
    with pytest.warns(UserWarning, match=r"3 linked image\(s\) in '.*train' resolve inside another class's folder and "
                                         r"are listed once, under that class: b/a0.png -> a, b/to_a/0.png -> a"):
        ds = build_dataset(cfg["Data"], "Train")
    assert len(ds) == 4 and [int(ds[i][1][0]) for i in range(4)] == [0, 0, 1, 1]


def test_an_image_without_read_permission_is_reported_and_the_rest_go_on(tmp_path, monkeypatch):
    import builtins

    import cv2

    from edgevit_paddle import image
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(tmp_path / split / cls / f"{i}.png"), np.full((8, 8, 3), 90 * i, np.uint8))
    denied = str(tmp_path / "train" / "a" / "0.png")

    def guarded(path, *args, **kw):  # as chmod 000 would (the tests run as root, who may read anything)
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kw)
    monkeypatch.setattr(image, "open", guarded, raising=False)
    cfg = load_config(None, ["Model.name=edgevit_xxs", "Data.dataset=imagefolder", f"Data.root={tmp_path}",
                             "Data.image_size=32", "Data.Eval.split=train",
                             "Data.Eval.transforms=[{Resize: {size: [32, 32]}}, {ToTensor: {}}]"])
    ds = build_dataset(cfg["Data"], "Eval")
    with pytest.warns(UserWarning, match="unreadable image .*a/0.png replaced by the next readable one of its class"):
        _, label = ds[0]
    assert int(label[0]) == 0  # class a's other image
    from edgevit_paddle.export import export_from_config
    folder = tmp_path / "exp"
    export_from_config(cfg, out_dir=str(folder), formats="paddle")
    res = tool("tools/infer.py", "--model-dir", str(folder), str(tmp_path / "train"))
    assert res.returncode == 3, res.stderr[-2000:]
    assert f"error: {denied}: cannot be read (Permission denied) (skipped)" in res.stderr
    assert len([line for line in res.stdout.splitlines() if ".png: " in line]) == 3


def test_files_edited_into_the_wrong_types_are_one_line_or_treated_as_damaged(tmp_path):
    run = tiny_run(tmp_path, "Global.epochs=2", "Global.keep_checkpoints=3")
    latest = run / "checkpoints" / "latest.json"
    data = json.loads(latest.read_text())
    latest.write_text(json.dumps({**data, "epochs_done": "two"}))  # a field of the wrong type
    res = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=3")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "latest.json is damaged or empty: resuming from 'epoch_2'" in res.stderr.replace("\n", " ")
    from edgevit_paddle.export import export_from_config
    folder = tmp_path / "exp"
    export_from_config(load_config(str(run / "config.yaml")), weights=str(run / "checkpoints" / "best"),
                       out_dir=str(folder), formats="paddle")
    sidecar = yaml.safe_load((folder / "inference.yml").read_text())
    photo = flowers_jpegs(tmp_path / "photo", ids=(1,))[0]
    for key, value in (("input_size", "abc"), ("input_size", [3, 0, 32]), ("class_names", "x")):
        (folder / "inference.yml").write_text(yaml.safe_dump({**sidecar, key: value}))
        line = one_error_line(tool("tools/infer.py", "--model-dir", str(folder), photo))
        assert f"inference.yml': {key} must be" in line and "re-export" in line, line


def test_damaged_or_hostile_dataset_files_are_one_line(tmp_path):
    import io
    import shutil
    import tarfile

    from conftest import DATA

    from edgevit_paddle.errors import DataError

    def flowers_root(name, archive=None, setid=None):
        root = tmp_path / name
        root.mkdir()
        shutil.copy(os.path.join(DATA, "flowers102", "imagelabels.mat"), root)
        if setid is None:
            shutil.copy(os.path.join(DATA, "flowers102", "setid.mat"), root)
        else:
            (root / "setid.mat").write_bytes(setid)
        with tarfile.open(root / "102flowers.tgz", "w:gz") as tar:
            for member, data in (archive or {"jpg/image_00001.jpg": b"x"}).items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return root

    def load(dataset, root):
        return build_dataset(load_config(None, ["Model.name=edgevit_xxs", f"Data.dataset={dataset}",
                                                f"Data.root={root}"])["Data"], "Train")

    cases = [("flowers102", flowers_root("setid", setid=b"MATLAB 5.0 garbage" * 10), "setid.mat"),
             ("flowers102", flowers_root("escape", archive={"../escape.txt": b"x"}), "outside its folder")]
    cut = flowers_root("cut")
    data = (cut / "102flowers.tgz").read_bytes()
    (cut / "102flowers.tgz").write_bytes(data[: len(data) // 2])
    cases.append(("flowers102", cut, "102flowers.tgz"))
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for f in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        raw = open(os.path.join(DATA, "mnist", f), "rb").read()
        (mnist / f).write_bytes(raw[: len(raw) // 3] if "images" in f else raw)
    cases.append(("mnist", mnist, "MNIST files"))
    for dataset, root, text in cases:
        with pytest.raises(DataError, match="cannot read the .* damaged or not the originals") as e:
            load(dataset, root)
        assert text in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert not (tmp_path / "escape.txt").exists()


def test_extending_a_finished_schedule_warns_with_the_way_out(tmp_path):
    run = tiny_run(tmp_path)  # cosine to 0 over its one epoch, no warm-up
    res = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=2")
    assert res.returncode == 0, res.stderr[-2000:]
    text = res.stderr.replace("\n", " ")
    assert "schedule has ended (rate 0)" in text and "--weights-only" in text and "Global.pretrained_model=" in text


def test_resuming_a_run_stopped_before_its_first_checkpoint_trains_it_again_in_its_folder(tmp_path):
    import shutil
    run = tiny_run(tmp_path)
    straight = paddle.load(str(run / "checkpoints" / "epoch_1.pdparams"))
    shutil.rmtree(run / "checkpoints")  # as a kill in epoch 1 leaves it: config.yaml, train.log, no checkpoint
    (run / "metrics.json").unlink()
    res = tool("tools/train.py", "--resume", "auto", "-o", f"Global.output_dir={tmp_path}", "-o", "Global.run_name=t")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "the run stopped in its first epoch): training it again from epoch 1 in this folder" in \
        (res.stdout + res.stderr).replace("\n", " ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]  # no t-2
    again = paddle.load(str(run / "checkpoints" / "epoch_1.pdparams"))
    for k, v in straight.items():  # the same seeds from the same config: the same weights
        if k != "__identity__":
            np.testing.assert_array_equal(np.asarray(v), np.asarray(again[k]), err_msg=k)


def test_resuming_with_another_batch_size_warns(tmp_path):
    run = tiny_run(tmp_path, "Global.epochs=2", "Optimizer.Scheduler.warmup_epochs=1")  # 4 steps per epoch
    quiet = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=3")
    assert quiet.returncode == 0 and "steps per epoch before" not in quiet.stderr, quiet.stderr[-2000:]
    res = tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=4", "-o", "Data.Train.batch_size=32")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "took 4 steps per epoch before and takes 2 now" in res.stderr.replace("\n", " ")


def test_export_folders_keep_user_files_follow_links_and_survive_a_full_disk_in_onnx(tmp_path, monkeypatch):
    """#33: a user's inference.notes.txt beside an earlier export is never deleted (the folder is refused); --out a
    symbolic link exports into its target and leaves no staging link; a full disk while paddle2onnx writes is one
    line with the earlier export intact."""
    import errno

    import paddle2onnx

    from edgevit_paddle.errors import ExportError
    from edgevit_paddle.export import export_registered
    folder = tmp_path / "export"
    export_registered("vit_mnist", str(folder), formats="paddle")
    (folder / "inference.notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"holds files that are not an export \(inference.notes.txt\)"):
        export_registered("vit_mnist", str(folder), formats="paddle")
    assert (folder / "inference.notes.txt").read_text() == "mine"
    (folder / "inference.notes.txt").unlink()
    link = tmp_path / "link_out"
    os.symlink(folder, link)
    export_registered("vit_mnist", str(link), formats="paddle")
    assert os.path.islink(link) and os.path.isfile(folder / "inference.json")
    assert [f for f in os.listdir(tmp_path) if ".staging-" in f] == []
    before = {f: (folder / f).read_bytes() for f in os.listdir(folder)}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paddle2onnx, "export", full)
    with pytest.raises(ExportError, match="no space left.*an earlier export there is intact"):
        export_registered("vit_mnist", str(folder))
    assert {f: (folder / f).read_bytes() for f in os.listdir(folder)} == before


def test_a_label_file_that_is_not_utf8_is_one_line(tmp_path):
    from edgevit_paddle.errors import InputError
    from edgevit_paddle.labels import read_labels
    (tmp_path / "labels.txt").write_bytes(b"daisy\nros\xe9\n")
    with pytest.raises(InputError, match=r"'.*labels.txt' is not UTF-8 text \(byte 0xe9 at offset 9\): save it as "
                                         "UTF-8"):
        read_labels(str(tmp_path / "labels.txt"))


def test_a_bug_below_the_damaged_file_handlers_keeps_its_traceback(tmp_path, monkeypatch):
    """#31: the weights unpickler and the dataset readers turn what the libraries raise for a damaged file into one
    line, but the same exception types raised by our own code under them (find_class, extract_flowers) are bugs."""
    import pickle

    from edgevit_paddle import safe_load
    from edgevit_paddle.data import build_dataset, sources
    from edgevit_paddle.errors import DataError
    paddle.save({"w": paddle.ones([2])}, str(tmp_path / "w.pdparams"))
    (tmp_path / "bad.pdparams").write_bytes(b"\x80\x04K\x01q\x00h\x05.")  # a memo miss: KeyError inside pickle
    with pytest.raises(pickle.UnpicklingError):
        safe_load.load(str(tmp_path / "bad.pdparams"))

    def planted(*a, **k):
        raise TypeError("planted bug")

    with monkeypatch.context() as m:
        m.setattr(safe_load._WeightsUnpickler, "find_class", planted)  # noqa: SLF001 - the code under test
        with pytest.raises(TypeError, match="planted bug"):
            safe_load.load(str(tmp_path / "w.pdparams"))
    data = load_config(os.path.join(ROOT, "configs", "quickstart.yaml"),
                       ["Data.dataset=flowers102", f"Data.root={DATA}/flowers102", "Data.image_size=32"])["Data"]
    monkeypatch.setattr(sources, "extract_flowers", planted)
    with pytest.raises(TypeError, match="planted bug"):
        build_dataset(data, "Eval")
    monkeypatch.setattr(sources, "extract_flowers", lambda root: {}["missing"])  # a KeyError in our code
    with pytest.raises(KeyError):
        build_dataset(data, "Eval")
    assert issubclass(DataError, ValueError)


def test_weights_of_another_dtype_are_cast_or_refused_in_one_line_and_metadata_never_replaces_a_tensor(tmp_path):
    """#33: float16/float64 weights load (cast, with a warning saying so); integer ones are one line naming the
    tensor; a .safetensors metadata entry named like a tensor does not replace the tensor."""
    import warnings

    from safetensors.numpy import save_file

    import edgevit_paddle as ep
    from edgevit_paddle.errors import WeightsError
    net = ep.create_model("vit_mnist")
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    x = paddle.randn([2, 1, 28, 28])
    net.eval()
    want = net(x).numpy()
    for ext, dtype in ((".pdparams", "float64"), (".safetensors", "float16")):
        path = str(tmp_path / f"w_{dtype}{ext}")
        cast = {k: v.astype(dtype) for k, v in state.items()}
        if ext == ".pdparams":
            paddle.save(cast, path)
        else:
            save_file(cast, path)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            got = ep.create_model("vit_mnist", checkpoint_path=path)
        assert any(f"stored as {dtype} cast" in str(w.message) for w in seen)
        got.eval()
        np.testing.assert_allclose(got(x).numpy(), want, atol=5e-2 if dtype == "float16" else 1e-5)
    for ext, dtype in ((".pdparams", "int32"), (".safetensors", "int64")):
        path = str(tmp_path / f"w_{dtype}{ext}")
        cast = {k: v.astype(dtype) for k, v in state.items()}
        paddle.save(cast, path) if ext == ".pdparams" else save_file(cast, path)
        with pytest.raises(WeightsError, match=rf"tensor\(s\) of a dtype the model cannot take: .*\({dtype}, the "
                                               "model's is float32\\)"):
            ep.create_model("vit_mnist", checkpoint_path=path)
    path = str(tmp_path / "meta.safetensors")
    save_file(state, path, metadata={"head.weight": "not a tensor"})
    got = ep.create_model("vit_mnist", checkpoint_path=path)
    got.eval()
    np.testing.assert_allclose(got(x).numpy(), want, atol=1e-6)
