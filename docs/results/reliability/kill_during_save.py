"""Kill a training run with SIGKILL at random moments (most of its time is spent saving: tiny epochs, a checkpoint
each), then check what is on disk and that a resume goes on. Evidence for docs/RELIABILITY.md, not a CI test.

    python docs/results/reliability/kill_during_save.py OUT_DIR [TRIES [MIN_S MAX_S]]   (kill MIN_S..MAX_S s in)
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import paddle

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TINY = ["Data.dataset=digits", "Data.image_size=32", "Data.Train.max_samples=32", "Data.Eval.max_samples=16",
        "Data.Train.batch_size=16", "Data.Eval.batch_size=16", "Global.verbose=0", "Global.epochs=200",
        "Data.Train.transforms=[{Resize: {size: 32}}, {ToTensor: {}}]",
        "Data.Eval.transforms=[{Resize: {size: 32}}, {ToTensor: {}}]"]


def inspect(ckpt):
    files = sorted(os.listdir(ckpt)) if os.path.isdir(ckpt) else []
    report = {"files": files, "tmp": [f for f in files if ".tmp-" in f]}
    latest_path = os.path.join(ckpt, "latest.json")
    if not os.path.exists(latest_path):
        report["latest"] = None
        return report
    latest = json.load(open(latest_path))
    name = latest["checkpoint"]
    paddle.load(os.path.join(ckpt, name + ".pdparams"))  # raises if torn
    meta = json.load(open(os.path.join(ckpt, name + ".json")))
    report.update(latest=name, epochs_done=latest["epochs_done"], latest_agrees_with_its_checkpoint=(
        meta["epochs_done"] == latest["epochs_done"]))
    best = os.path.join(ckpt, "best.json")
    if latest.get("best_epoch"):
        has_best = os.path.exists(best)
        best_epoch = json.load(open(best))["best_epoch"] if has_best else None
        pending = os.path.exists(os.path.join(ckpt, "best_pending.json"))
        report.update(best_epoch_latest=latest["best_epoch"], best_epoch_file=best_epoch, best_pending=pending,
                      best_agrees=best_epoch == latest["best_epoch"])
    return report


def main(out, tries, lo=4.0, hi=9.0):
    rng = random.Random(0)
    for t in range(tries):
        cmd = [sys.executable, os.path.join(ROOT, "tools", "train.py"), "-o", f"Global.output_dir={out}/{t}",
               "-o", "Global.run_name=k", *[a for kv in TINY for a in ("-o", kv)]]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        for line in proc.stdout:
            if "run directory" in line:
                break
        time.sleep(rng.uniform(lo, hi))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        ckpt = os.path.join(out, str(t), "k", "checkpoints")
        after_kill = inspect(ckpt)
        epochs = after_kill.get("epochs_done", 0) + 1
        res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), "--resume",
                              os.path.join(out, str(t), "k"), "-o", f"Global.epochs={epochs}"],
                             capture_output=True, text=True)
        after_resume = inspect(ckpt)
        print(json.dumps({"try": t, "after_kill": {k: v for k, v in after_kill.items() if k != "files"},
                          "resume_exit": res.returncode,
                          "after_resume": {k: v for k, v in after_resume.items() if k != "files"}}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) if i == 0 else float(a) for i, a in enumerate(sys.argv[2:])))
