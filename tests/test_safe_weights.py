"""No weights file runs code: a crafted pickle through every entry point that reads weights is refused in one line
and its payload never runs; pickle-free ``.safetensors`` weights load wherever ``.pdparams`` do."""
import os
import pickle
import shutil

import numpy as np
import paddle
import pytest
import yaml
from conftest import run_tool
from test_reliability import one_error_line, tiny_run

from edgevit_paddle import create_model, safe_load
from edgevit_paddle.errors import WeightsError
from edgevit_paddle.weights import load_weights, model_identity, save_weights, saved_identity


class _Payload:
    """What a hostile file carries: unpickling it calls ``os.system`` (or ``eval``) to write a marker file."""

    def __init__(self, marker, call="system"):
        self.marker, self.call = str(marker), call

    def __reduce__(self):
        if self.call == "eval":
            return eval, (f"open({self.marker!r}, 'w').write('ran')",)
        return os.system, (f"touch {self.marker}",)


def crafted(path, marker, call="system", inside=None):
    """A file that looks like weights (real arrays, the right keys) and carries a payload."""
    state = {k: v.numpy() for k, v in (inside or {}).items()}
    state["__payload__"] = _Payload(marker, call)
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=4)
    return str(path)


@pytest.mark.parametrize("call", ["system", "eval"])
def test_a_crafted_pickle_is_refused_before_it_runs(tmp_path, call):
    marker = tmp_path / "ran"
    path = crafted(tmp_path / "evil.pdparams", marker, call)
    with pytest.raises(WeightsError, match=r"not a plain weights file: it asks to run .* refused, nothing of it ran"):
        load_weights(path)
    assert not marker.exists()
    # hidden in an array's object dtype, too
    with open(tmp_path / "obj.pdparams", "wb") as f:
        pickle.dump({"w": np.array([_Payload(marker)], dtype=object)}, f)
    with pytest.raises(WeightsError):
        safe_load.load(str(tmp_path / "obj.pdparams"))
    assert not marker.exists()


def test_every_entry_point_refuses_a_crafted_file_in_one_line(tmp_path):
    marker = tmp_path / "ran"
    run = tiny_run(tmp_path / "src", "Global.epochs=1")
    net = create_model("edgevit_xxs", num_classes=10)
    evil = crafted(tmp_path / "evil.pdparams", marker, inside=net.state_dict())
    config = str(run / "config.yaml")
    lines = [one_error_line(run_tool("tools/eval.py", "-c", config, "--weights", evil)),
             one_error_line(run_tool("tools/export.py", "-c", config, "--weights", evil, "--format", "paddle",
                                     "--out", str(tmp_path / "exp"))),
             one_error_line(run_tool("tools/train.py", "-c", config, "-o", f"Global.pretrained_model={evil}",
                                     "-o", f"Global.output_dir={tmp_path / 'ft'}"))]
    # an exported folder whose inference.yml names the crafted file as its source
    fake = tmp_path / "fake_export"
    fake.mkdir()
    (fake / "inference.yml").write_text(yaml.safe_dump({"weights": evil}))
    lines.append(one_error_line(run_tool("tools/train.py", "-c", config, "-o", f"Global.pretrained_model={fake}",
                                         "-o", f"Global.output_dir={tmp_path / 'ft2'}")))
    # --resume: the checkpoint's weights, then its optimizer state
    for part in ("epoch_1.pdparams", "epoch_1.pdopt"):
        resumed = tmp_path / f"resume_{part.replace('.', '_')}"
        shutil.copytree(run, resumed)
        shutil.copy(evil, resumed / "checkpoints" / part)
        if part.endswith(".pdparams"):
            shutil.copy(evil, resumed / "checkpoints" / "best.pdparams")
        lines.append(one_error_line(run_tool("tools/train.py", "--resume", str(resumed), "-o", "Global.epochs=2")))
    assert not marker.exists()
    assert all("is not a plain weights file" in line and "nothing of it ran" in line for line in lines), lines


def test_safetensors_weights_load_everywhere_pdparams_do(tmp_path):
    run = tiny_run(tmp_path / "src", "Global.epochs=1")
    best = load_weights(str(run / "checkpoints" / "best"))
    net = create_model("edgevit_xxs", num_classes=10)
    shared = str(tmp_path / "shared.safetensors")
    save_weights(best, shared, model_identity(net))
    with open(shared, "rb") as f:
        assert b"numpy" not in f.read(4096)  # a JSON header and raw arrays: nothing to unpickle
    got = load_weights(shared)
    assert saved_identity(shared, got) == model_identity(net)
    for k, v in best.items():
        if isinstance(v, paddle.Tensor):
            np.testing.assert_array_equal(got[k].numpy(), v.numpy(), err_msg=k)
    res = run_tool("tools/eval.py", "-c", str(run / "config.yaml"), "--weights", shared, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    ln = run_tool("tools/eval.py", "-c", str(run / "config.yaml"), "-o", "Model.norm=ln", "--weights", shared)
    assert "Model.norm: 'gn' in the weights, 'ln' in the config" in one_error_line(ln)  # its identity is checked
    tuned = run_tool("tools/train.py", "-c", str(run / "config.yaml"), "-o", f"Global.pretrained_model={shared}",
                     "-o", f"Global.output_dir={tmp_path / 'ft'}", "-o", "Global.epochs=1")
    assert tuned.returncode == 0 and f"loaded 240 of 240 tensors from {shared}" in tuned.stdout, tuned.stderr[-2000:]
    (tmp_path / "cut.safetensors").write_bytes(open(shared, "rb").read()[:1000])
    with pytest.raises(WeightsError, match="cut.safetensors.*damaged or not a weights file"):
        load_weights(str(tmp_path / "cut.safetensors"))


def test_a_shared_structure_and_a_damaged_optimizer_state_are_handled(tmp_path):
    nested = [1]
    for _ in range(80):  # 2**80 paths through 80 objects: converted once each, not walked
        nested = [nested, nested]
    with open(tmp_path / "laugh.pdparams", "wb") as f:
        pickle.dump({"a": nested}, f)
    assert isinstance(safe_load.load(str(tmp_path / "laugh.pdparams")), dict)
    # a damaged .pdopt is a damaged checkpoint: the resume falls back to the one before it
    run = tiny_run(tmp_path / "src", "Global.epochs=2", "Global.keep_checkpoints=3")
    (run / "checkpoints" / "epoch_2.pdopt").write_bytes(os.urandom(2000))
    res = run_tool("tools/train.py", "--resume", str(run), "-o", "Global.epochs=3")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "names 'epoch_2', which is missing or damaged: resuming from 'epoch_1'" in res.stderr.replace("\n", " ")


def test_the_converter_refuses_an_npz_that_holds_a_pickle(tmp_path):
    from edgevit_paddle.convert import read_state_dict
    marker = tmp_path / "ran"
    np.savez(tmp_path / "obj.npz", w=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(WeightsError, match="Object arrays cannot be loaded.*save the state_dict as plain numpy"):
        read_state_dict(str(tmp_path / "obj.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip" * 10)
    with pytest.raises(WeightsError, match="cannot read .*junk.npz"):
        read_state_dict(str(tmp_path / "junk.npz"))
    assert not marker.exists()
